"""Two figures of a two-objective sweep of the tiny model (macro-f1-span up, latency_ms
down, NSGA-II, keep_best=2, nothing pruned):

1. Disk: peak bytes under outputs/hpo/<backbone> during the sweep, measured without gaps
   (_disk_probe.py: right before and after every call that can shrink the tree), in units
   of one checkpoint. Target: never more than keep_best + 1 checkpoints at once (the new
   member is complete before a member that fell off the front goes).
2. Cost of measuring latency_ms: the wall time of the measurement (warm-up and timed
   forward passes) as a share of its fold's whole training call, over folds run in this
   process through the built-in trainer, batch sizes 16 and 32 alternating; median. The
   folds are of a realistic size for the measurement's fixed cost (2,000 generated
   sentences, 1,000 per fold's training half, 3 epochs); on the smoke sweep's toy folds
   (150 sentences, 1 epoch) the same 7 forward passes are a far larger share.
   Target: <= 2 % of a fold's time.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, bench_env, checked_wall, dir_bytes, quick_mode

KEEP_BEST = 2
OBJECTIVES = ("study.objectives=[{metric: macro-f1-span, goal: maximize}, "
              "{metric: latency_ms, goal: minimize}]")
SWEEP = [OBJECTIVES, "study.pruner.name=none", "study.sampler.name=nsga2",
         "model.from_config.hidden_size=128", "model.from_config.intermediate_size=256",
         "model.from_config.num_hidden_layers=2", "mlflow.enabled=false",
         f"checkpoint.keep_best={KEEP_BEST}"]
FULL = ["study.max_trials=10", "k_fold.n_splits=2", "train.epochs=2"]
QUICK = ["study.max_trials=3", "k_fold.n_splits=2", "train.epochs=1",
         "data.synthetic.sentences=100"]
LATENCY_FOLDS = ["k_fold.n_splits=2", "train.epochs=3", "data.synthetic.sentences=2000"]


def two_objective_config(directory: Path) -> Path:
    """configs/smoke.yaml without its single objective (both spellings would be refused)."""
    text = "".join(line for line in (REPO / "configs/smoke.yaml").read_text().splitlines(True)
                   if "objective_" not in line)
    path = directory / "front.yaml"
    path.write_text(text)
    return path


def disk(config: Path, out: Path, overrides: list[str]) -> dict[str, Any]:
    root = out / "hpo" / "tiny-bert"
    record = out.parent / "record.json"
    checked_wall([sys.executable, str(Path(__file__).parent / "_disk_probe.py"), str(record),
                  str(root), "--", "run", str(config), *SWEEP, *overrides, f"output_dir={out}",
                  "--json"], cwd=out.parent, env=bench_env())
    result = json.loads(record.read_text())
    kept = json.loads((root / "best.json").read_text())["best"]
    result["one_checkpoint"] = dir_bytes(root / kept[0]["checkpoint"])
    result["kept"] = len(kept)
    return result


def latency_share(config: Path, overrides: list[str], folds: int) -> list[tuple[int, float]]:
    """(batch size, share of the fold's time spent measuring latency_ms) per fold."""
    from hposweep.api import TrialContext
    from hposweep.config.loading import load
    from hposweep.data.readers import build_folds, load_data
    from hposweep.training import builtin, cost_metrics

    cfg = load(config, [*SWEEP, *overrides]).config
    data = build_folds(cfg, load_data(cfg))[0]
    measured: list[float] = []
    original = cost_metrics.latency_ms

    def timed(*args: Any, **kwargs: Any) -> float:
        start = time.perf_counter()
        value = original(*args, **kwargs)
        measured.append(time.perf_counter() - start)
        return value

    cost_metrics.latency_ms = timed  # type: ignore[assignment]
    shares = []
    for i in range(folds):
        batch_size = (16, 32)[i % 2]
        ctx = TrialContext(cfg, "tiny-bert", trial_number=i, fold=0, seed=cfg.train.seed,
                           objective_metric=cfg.study.objective_metric, checkpoint_dir=None,
                           resume_dir=None, _report=lambda v, s: None,
                           _should_prune=lambda: False, _log_metrics=lambda m, s: None,
                           _warn=lambda m: None)
        start = time.perf_counter()
        builtin.train({"batch_size": batch_size}, data, ctx)
        shares.append((batch_size, measured[-1] / (time.perf_counter() - start)))
    return shares


def main() -> None:
    quick = quick_mode(__doc__)
    overrides = QUICK if quick else FULL
    with tempfile.TemporaryDirectory() as tmp:
        config = two_objective_config(Path(tmp))
        r = disk(config, Path(tmp) / "outputs", overrides)
        shares = latency_share(config, QUICK if quick else LATENCY_FOLDS, 4 if quick else 10)
    ckpt = r["one_checkpoint"]
    most = round(r["most_checkpoints"] / ckpt, 2)
    print(" ".join(overrides) + (" (--quick: figures mean nothing)" if quick else ""))
    print(f"disk: one checkpoint {ckpt / 2**20:.2f} MiB; at most {most:.2f} checkpoints at once; "
          f"final {r['final']['checkpoints'] / ckpt:.2f} ({r['kept']} kept members); "
          f"measured {r['measurements']} times, {r['unseen_shrinks']} unseen shrinks")
    verdict = "met" if most <= KEEP_BEST + 1 else "MISSED"
    print(f"target: at most keep_best + 1 = {KEEP_BEST + 1} checkpoints at once: {most:.2f} "
          f"({verdict})")
    for size in (16, 32):
        values = [s for b, s in shares if b == size]
        print(f"latency_ms measurement, batch {size}: median {statistics.median(values):.2%} of "
              f"the fold's time (min {min(values):.2%}, max {max(values):.2%}, {len(values)} folds)")
    median = statistics.median(s for _, s in shares)
    print(f"target: <= 2 % of a fold's time: {median:.2%} ({'met' if median <= 0.02 else 'MISSED'})")


if __name__ == "__main__":
    main()
