"""The optimism the final stage exposes, and what it costs.

Per seed, one sweep of the tiny model (``configs/smoke.yaml``) on generated NER data
(``data.synthetic`` with that seed) with 5 folds and ``final.refit: true``, a test file of
generated sentences of another seed, hposweep's defaults otherwise. Side by side:

- the winner's CV mean (the study's best value: the maximum over trials, optimistic);
- the baseline, what a sweep handed over before the final stage: the best trial's
  checkpoint (its last fold's model, trained on 4/5 of the data) scored on the test file;
- the refit model's test score (the final stage's ``test_<metric>``).

And the final stage's cost: the ``final`` MLflow run's duration as a share of the sweep's
(the parent run's, which ends before the final stage starts).
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from _common import BIN, REPO, bench_env, checked_wall, quick_mode

METRIC = "macro-f1-span"
SEEDS = [0, 1, 2, 3, 4]
SWEEP = ["k_fold.n_splits=5", "study.max_trials=6", "train.epochs=3", "study.pruner.name=none",
         "data.synthetic.sentences=200", "final.refit=true", "data.test=test.conll"]
QUICK = ["k_fold.n_splits=5", "study.max_trials=2", "train.epochs=1", "study.pruner.name=none",
         "data.synthetic.sentences=60", "final.refit=true", "data.test=test.conll"]
TEST_SENTENCES = 300


def write_test_file(path: Path, seed: int) -> None:
    from hposweep.data.readers import synthetic_ner

    path.write_text("".join("".join(f"{t}\t{g}\n" for t, g in zip(e.tokens, e.tags, strict=True))
                            + "\n" for e in synthetic_ner(TEST_SENTENCES, seed=seed)))


def test_score(checkpoint: Path, test_file: Path) -> float:
    """The checkpoint's objective on the test file (the final stage's own evaluation)."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from hposweep.data.readers import read_examples
    from hposweep.training.builtin import _encode_tokens, evaluate

    model = AutoModelForTokenClassification.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    rows = _encode_tokens(tokenizer, read_examples(test_file, "token-classification"),
                          {label: i for i, label in enumerate(labels)}, 32)
    return evaluate(model, rows, labels, tokenizer.pad_token_id, True, 32, "cpu")[METRIC]


def run_seed(seed: int, sweep: list[str]) -> dict[str, float]:
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_test_file(work / "test.conll", 1000 + seed)
        wall = checked_wall([str(BIN / "hposweep"), "run", str(REPO / "configs/smoke.yaml"),
                             *sweep, f"data.synthetic.seed={seed}", f"study.sampler.seed={seed}",
                             "--json"], cwd=work, env=bench_env())
        status = json.loads(checked_output(work))[0]
        client = MlflowClient(tracking_uri=f"sqlite:///{work / 'outputs/mlflow.db'}")
        parent = client.get_run(status["mlflow_parent_run_id"]).info
        (final,) = client.search_runs([parent.experiment_id],
                                      filter_string="tags.`hposweep.runType` = 'final'")
        return {"cv": status["best_value"],
                "fold_model_test": test_score(work / status["checkpoint"], work / "test.conll"),
                "refit_test": final.data.metrics[f"test_{METRIC}"],
                "sweep_s": (parent.end_time - parent.start_time) / 1000,
                "final_s": (final.info.end_time - final.info.start_time) / 1000, "wall_s": wall}


def checked_output(work: Path) -> str:
    import subprocess

    proc = subprocess.run([str(BIN / "hposweep"), "best", str(REPO / "configs/smoke.yaml"),
                           "--json"], cwd=work, env=bench_env(), capture_output=True, text=True,
                          check=True)
    return proc.stdout


def main() -> None:
    sweep = QUICK if quick_mode(__doc__) else SWEEP
    print(f"sweep: {' '.join(sweep)}; test file: {TEST_SENTENCES} generated sentences "
          f"(seed 1000 + s); metric {METRIC}")
    print(f"{'seed':>4} {'CV mean':>8} {'fold model test':>16} {'refit test':>11} "
          f"{'optimism (CV - refit)':>22} {'sweep s':>8} {'final s':>8} {'final share':>12}")
    rows = []
    for seed in SEEDS:
        r = run_seed(seed, sweep)
        rows.append(r)
        print(f"{seed:>4} {r['cv']:>8.4f} {r['fold_model_test']:>16.4f} {r['refit_test']:>11.4f} "
              f"{r['cv'] - r['refit_test']:>+22.4f} {r['sweep_s']:>8.1f} {r['final_s']:>8.1f} "
              f"{r['final_s'] / (r['sweep_s'] + r['final_s']):>12.1%}", flush=True)

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    optimism = [r["cv"] - r["refit_test"] for r in rows]
    gain = [r["refit_test"] - r["fold_model_test"] for r in rows]
    share = [r["final_s"] / (r["sweep_s"] + r["final_s"]) for r in rows]
    print(f"median: CV {median('cv'):.4f}, fold model on test {median('fold_model_test'):.4f}, "
          f"refit model on test {median('refit_test'):.4f}")
    print(f"optimism of the CV mean over the refit model's test score: mean "
          f"{statistics.fmean(optimism):+.4f}, median {statistics.median(optimism):+.4f}, "
          f"range {min(optimism):+.4f} .. {max(optimism):+.4f}")
    print(f"refit model vs the best fold model on the test set: mean {statistics.fmean(gain):+.4f},"
          f" refit better in {sum(g > 0 for g in gain)} of {len(gain)} seeds")
    print(f"final stage share of sweep + final: median {statistics.median(share):.1%} "
          f"(range {min(share):.1%} .. {max(share):.1%})")


if __name__ == "__main__":
    main()
