"""Pruning with the built-in trainer on the tiny model: ``hposweep run configs/smoke.yaml``
with 3 folds x 12 trials (3 epochs per fold, 300 generated sentences; the smoke config's
median settings: 2 start-up trials, 1 warm-up step), arms ``none``, ``wilcoxon``
(p_threshold 0.3: with 3 folds it can only decide after fold 2), ``median`` (running
estimates) and ``median`` + ``folds: wilcoxon``; whole commands, fresh output dirs, MLflow
off. Figures are counts, not times: fold-epochs trained (from the study: a trial reports
each fold-epoch it trained; with ``wilcoxon`` a fold step is ``epochs`` fold-epochs),
fold-epochs until the sweep first holds its unpruned counterpart's final best value (the
sweep's order of trials), trials pruned, the best value found. The seeded TPE draws the
same trials in every repetition (``--repeats``, default 1), so one run gives the counts.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

from _common import BIN, REPO, checked_wall, study_trials

EPOCHS, FOLDS, TRIALS = 3, 3, 12
SWEEP = [f"k_fold.n_splits={FOLDS}", f"study.max_trials={TRIALS}", f"train.epochs={EPOCHS}",
         "mlflow.enabled=false"]
ARMS = {"none": ["study.pruner.name=none"],
        "wilcoxon": ["study.pruner.name=wilcoxon", "study.pruner.p_threshold=0.3"],
        "median (estimates)": ["study.pruner.name=median"],
        "median + wilcoxon": ["study.pruner.name=median", "study.pruner.folds=wilcoxon",
                              "study.pruner.p_threshold=0.3"]}


def fold_epochs(trial: Any, arm: str) -> int:
    """What a trial trained: a fold step of ``wilcoxon`` is a whole fold."""
    return len(trial.intermediate_values) * (EPOCHS if arm == "wilcoxon" else 1)


def one(arm: str, tmp: Path) -> list[Any]:
    out = tmp / "outputs"
    checked_wall([str(BIN / "hposweep"), "run", str(REPO / "configs" / "smoke.yaml"), *SWEEP,
                  *ARMS[arm], f"output_dir={out}", "--json"], cwd=tmp)
    return study_trials(out / "hpo" / "smoke_tiny-bert" / "study.db", "smoke_tiny-bert")


def until(trials: list[Any], arm: str, target: float) -> int | None:
    spent = 0
    for t in sorted(trials, key=lambda t: t.number):
        spent += fold_epochs(t, arm)
        if t.state.name == "COMPLETE" and t.value >= target:
            return spent
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1)
    repeats = parser.parse_args().repeats
    runs: dict[str, list[list[Any]]] = {arm: [] for arm in ARMS}
    for r in range(repeats):
        for arm in (ARMS if r % 2 == 0 else list(ARMS)[::-1]):
            with tempfile.TemporaryDirectory() as tmp:
                runs[arm].append(one(arm, Path(tmp)))
    targets = [max(t.value for t in run if t.state.name == "COMPLETE") for run in runs["none"]]
    base = statistics.median(sum(fold_epochs(t, "none") for t in run) for run in runs["none"])
    print(f"{FOLDS} folds x {EPOCHS} epochs x {TRIALS} trials, TPE; unpruned final best "
          f"{targets}")
    print(f"{'arm':<22}{'fold-epochs':>12}{'vs none':>9}{'to none best':>14}{'pruned':>8}"
          f"{'best':>8}")
    for arm, arm_runs in runs.items():
        total = statistics.median(sum(fold_epochs(t, arm) for t in run) for run in arm_runs)
        to = [until(run, arm, target) for run, target in zip(arm_runs, targets, strict=True)]
        pruned = statistics.median(sum(t.state.name == "PRUNED" for t in run) for run in arm_runs)
        best = statistics.median(max(t.value for t in run if t.state.name == "COMPLETE")
                                 for run in arm_runs)
        print(f"{arm:<22}{total:>12g}{total / base:>8.2f}x{str(to):>14}{pruned:>8g}{best:>8.4f}")
        print(f"{'':<22}pruned at (fold, epoch): " + ", ".join(
            f"t{t.number}: {_where(t, arm)}" for t in arm_runs[0] if t.state.name == "PRUNED"))


def _where(trial: Any, arm: str) -> str:
    step = max(trial.intermediate_values)
    return f"after fold {step + 1}" if arm == "wilcoxon" else (
        f"fold {step // EPOCHS + 1} epoch {step % EPOCHS + 1}"
        if "after fold" not in trial.user_attrs.get("prune_reason", "")
        else f"after fold {step // EPOCHS + 1}")


if __name__ == "__main__":
    main()
