"""Peak bytes under outputs/hpo/<backbone> during a 6-trial x 3-fold sweep of 3 epochs per
fold (so every fold saves its full training state for resuming after epochs 1 and 2),
measured without gaps (see _disk_probe.py: right before and after every call that can
shrink the tree), in units of one checkpoint and of one resume state: best-only
(keep_best=1) next to save-everything. Target: best-only never holds more than
keep_best + 1 checkpoints at once (the new best is complete before the old one goes)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import REPO, bench_env, checked_wall, dir_bytes, quick_mode

KEEP_BEST = 1
# Nothing is pruned (every trial runs every fold: the most disk); MLflow off, it writes
# outside the measured dir (its copy of the best checkpoint goes to outputs/mlartifacts).
SWEEP = ["study.pruner.name=none", "model.from_config.hidden_size=128",
         "model.from_config.intermediate_size=256", "model.from_config.num_hidden_layers=2",
         "mlflow.enabled=false", f"checkpoint.keep_best={KEEP_BEST}"]
FULL = ["study.max_trials=6", "k_fold.n_splits=3", "train.epochs=3"]
QUICK = ["study.max_trials=3", "k_fold.n_splits=2", "train.epochs=3",
         "data.synthetic.sentences=100"]
MODES = {"save_only_best=true, keep_best=1": True, "save_only_best=false (every fold)": False}


def probed_sweep(out: Path, overrides: list[str], save_only_best: bool) -> dict[str, Any]:
    """The probe's record of one sweep, plus the size of its best checkpoint."""
    root = out / "hpo" / "tiny-bert"
    record = out.parent / f"{out.name}.json"
    checked_wall([sys.executable, str(Path(__file__).parent / "_disk_probe.py"), str(record),
                  str(root), "--", "run", str(REPO / "configs/smoke.yaml"), *SWEEP, *overrides,
                  f"checkpoint.save_only_best={str(save_only_best).lower()}", f"output_dir={out}",
                  "--json"], cwd=out.parent, env=bench_env())
    result = json.loads(record.read_text())
    best = json.loads((root / "best.json").read_text())["best"][0]
    result["one_checkpoint"] = dir_bytes(root / best["checkpoint"])
    if not result["one_state"]:
        raise SystemExit("no resume state was seen: train.epochs must be >= 2 (or the resume "
                         "layout changed: see _disk_probe.py)")
    return result


def row(name: str, r: dict[str, Any]) -> str:
    ckpt, state = r["one_checkpoint"], r["one_state"]
    peak = r["peak"]
    at_peak = f"{peak['checkpoints'] / ckpt:.2f} + {peak['resume'] / state:.2f}"
    total = peak["checkpoints"] + peak["resume"]
    return (f"{name:<36}{total / 2**20:>9.2f}{total / ckpt:>9.2f}{at_peak:>14}"
            f"{r['most_checkpoints'] / ckpt:>8.2f}{r['most_resume'] / state:>8.2f}"
            f"{r['final']['checkpoints'] / ckpt:>8.2f}{r['unseen_shrinks']:>8}")


def main() -> None:
    quick = quick_mode(__doc__)
    overrides = QUICK if quick else FULL
    with tempfile.TemporaryDirectory() as tmp:
        results = {name: probed_sweep(Path(tmp) / f"out-{best}", overrides, best)
                   for name, best in MODES.items()}
    print(f"{' '.join(overrides)}" + (" (--quick: figures mean nothing)" if quick else ""))
    print(f"{'':36}{'peak':>9}{'peak':>9}{'at the peak':>16}{'most at once':>16}"
          f"{'final':>8}{'unseen':>8}")
    print(f"{'mode':<36}{'MiB':>9}{'/ckpt':>9}{'ckpts + states':>16}{'ckpts':>8}{'states':>8}"
          f"{'ckpts':>8}{'shrinks':>8}")
    for name, r in results.items():
        print(row(name, r))
    first = next(iter(results.values()))
    print(f"one checkpoint: {first['one_checkpoint'] / 2**20:.2f} MiB; one resume state "
          f"(one fold's weights, optimizer, scheduler, RNG): {first['one_state'] / 2**20:.2f} MiB; "
          f"measured {first['measurements']} times (best-only)")
    most = round(first["most_checkpoints"] / first["one_checkpoint"], 2)  # as printed:
    verdict = "met" if most <= KEEP_BEST + 1 else "MISSED"  # best.json's bytes count too
    print(f"target, best-only: at most keep_best + 1 = {KEEP_BEST + 1} checkpoints at once: "
          f"{most:.2f} ({verdict})")


if __name__ == "__main__":
    main()
