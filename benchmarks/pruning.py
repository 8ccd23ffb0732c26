"""Fold-level pruning (``study.pruner.name: wilcoxon``) vs no pruning, on a simulated
sweep through hposweep's own trial loop (``hposweep.sweep.run``, in this process: the
same admission, trial and report path as ``hposweep run``, minus the CLI's start-up):
5 folds x 60 trials x 5 sampler seeds, TPE, the trainer of ``_sim_trainer.py``. Figures:
fold trainings run, and the true score of the best trial found (best by its mean over
folds, as the sweep picks it). In-memory study and no MLflow: what is counted is the
search, not the storage.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import _sim_trainer
from _common import REPO, alternating, quick_mode

ARMS = {"none": ["study.pruner.name=none"],
         **{f"wilcoxon p={p}": ["study.pruner.name=wilcoxon", f"study.pruner.p_threshold={p}"]
            for p in (0.1, 0.3, 0.4, 0.5)}}
SPACE = ["search_space={learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}, "
         "dropout: {type: float, low: 0.0, high: 0.4}, "
         "warmup_ratio: {type: float, low: 0.0, high: 0.2}}"]


# Distinct seeds draw independent streams (a trial's seed hashes the seed, the study and the
# trial number); the spacing keeps the seeds the figures were measured with.
SEED_SPACING = 10_000


def sweep_overrides(output_dir: Path, seed: int, trials: int, folds: int,
                    trainer: str = "_sim_trainer:fold_score") -> list[str]:
    return [*SPACE, f"output_dir={output_dir}", f"study.sampler.seed={seed * SEED_SPACING}",
            "study.sampler.name=tpe", f"study.max_trials={trials}", f"k_fold.n_splits={folds}",
            "study.objective_metric=score", f"train.trainer={trainer}", "train.epochs=1",
            "data.synthetic={sentences: 20, seed: 0}", "study.persist=false",
            "mlflow.enabled=false", "study.name=sim_{backbone}", "backbones=[sim]"]


def run_sweep(overrides: list[str]) -> Any:
    """One sweep through hposweep's trial loop; returns its result (trials, best)."""
    from hposweep.config.loading import load
    from hposweep.console.reports import SweepConsole
    from hposweep.sweep import backbone as sweep

    loaded = load(REPO / "configs" / "smoke.yaml", overrides)
    (result,) = sweep.run(loaded, SweepConsole(mode="json"))
    return result


def one(arm: str, seed: int, trials: int, folds: int, tmp: Path) -> dict[str, float]:
    _sim_trainer.CALLS = 0
    result = run_sweep([*sweep_overrides(tmp / f"{arm}-{seed}", seed, trials, folds), *ARMS[arm]])
    best = next(t for t in result.trials if t.number == result.best_trial)
    return {"folds": _sim_trainer.CALLS, "best_true": _sim_trainer.true_score(result.best_params),
            "pruned": result.n_pruned,
            "fold_se": statistics.stdev(_sim_trainer.fold_scores(best.params, folds)) / folds ** 0.5}


def main() -> None:
    quick = quick_mode(__doc__)
    seeds, trials, folds = (range(2), 12, 5) if quick else (range(5), 60, 5)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # _sim_trainer for train.trainer
    rows: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
    arms = list(ARMS)
    with tempfile.TemporaryDirectory() as tmp:
        for seed, (first, _) in zip(seeds, alternating(("none", "wilcoxon"), len(seeds)), strict=True):
            order = arms if first == "none" else arms[::-1]
            for arm in order:
                rows[arm].append(one(arm, seed, trials, folds, Path(tmp)))
    base = rows["none"]
    best_base = [r["best_true"] for r in base]
    se = statistics.stdev(best_base) / len(best_base) ** 0.5
    print(f"{len(seeds)} seeds x {trials} trials x {folds} folds, TPE; fold noise sd "
          f"{_sim_trainer.FOLD_SD} (per fold) + {_sim_trainer.TRIAL_FOLD_SD} (trial x fold)")
    print(f"{'pruner':<16}{'fold trainings':>16}{'saved':>8}{'pruned':>8}"
          f"{'best true score':>17}{'vs none':>10}")
    for arm, runs in rows.items():
        n = statistics.fmean(r["folds"] for r in runs)
        best = statistics.fmean(r["best_true"] for r in runs)
        saved = 1 - n / statistics.fmean(r["folds"] for r in base)
        print(f"{arm:<16}{n:>16.1f}{saved:>8.0%}{statistics.fmean(r['pruned'] for r in runs):>8.1f}"
              f"{best:>17.4f}{best - statistics.fmean(best_base):>+10.4f}")
    print(f"standard error of the unpruned sweep's best true score over seeds: {se:.4f}; "
          "standard error over folds of its best trial's score (median of seeds): "
          f"{statistics.median(r['fold_se'] for r in base):.4f}")
    print("per seed, best true score: " + "; ".join(
        f"{arm}: " + " ".join(f"{r['best_true']:.4f}" for r in runs) for arm, runs in rows.items()))


if __name__ == "__main__":
    main()
