"""Fold-level pruning with the built-in trainer on the tiny model: ``hposweep run
configs/smoke.yaml`` with 3 folds x 12 trials (3 epochs per fold, 300 generated
sentences), ``study.pruner.name=wilcoxon`` (p_threshold 0.3: with 3 folds it can only
decide after fold 2, where 2 pairs give p >= 0.25) vs ``none``; whole commands, fresh
output dirs, 4 repetitions alternating which side runs first, medians. Figures: fold
trainings run (from the study: a pruned trial's steps are the folds it ran), wall time
of the whole command, time in trials (the study's timestamps), the best value found.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from _common import BIN, REPO, alternating, checked_wall, quick_mode, study_trials

SWEEP = ["k_fold.n_splits=3", "study.max_trials=12", "mlflow.enabled=false"]
ARMS = {"none": ["study.pruner.name=none"],
        "wilcoxon": ["study.pruner.name=wilcoxon", "study.pruner.p_threshold=0.3"]}


def one(arm: str, tmp: Path, extra: list[str]) -> dict[str, float]:
    out = tmp / "outputs"
    wall = checked_wall([str(BIN / "hposweep"), "run", str(REPO / "configs" / "smoke.yaml"), *SWEEP,
                         *extra, *ARMS[arm], f"output_dir={out}", "--json"], cwd=tmp)
    trials = study_trials(out / "hpo" / "smoke_tiny-bert" / "study.db", "smoke_tiny-bert")
    folds = sum(3 if t.state.name == "COMPLETE" or arm == "none" else len(t.intermediate_values)
                for t in trials)
    best = max(t.value for t in trials if t.state.name == "COMPLETE")
    return {"wall": wall, "folds": folds, "best": best,
            "pruned": sum(t.state.name == "PRUNED" for t in trials),
            "trial_s": sum(t.duration.total_seconds() for t in trials)}


def main() -> None:
    quick = quick_mode(__doc__)
    extra = ["study.max_trials=4", "train.epochs=1"] if quick else []
    rows: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
    for order in alternating(("none", "wilcoxon"), 1 if quick else 4):
        for arm in order:
            with tempfile.TemporaryDirectory() as tmp:
                rows[arm].append(one(arm, Path(tmp), extra))
    print(f"{'pruner':<10}{'fold trainings':>16}{'pruned':>8}{'wall (s)':>10}{'trial time (s)':>16}"
          f"{'best macro-f1-span':>20}")
    for arm, runs in rows.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{arm:<10}{med['folds']:>16g}{med['pruned']:>8g}{med['wall']:>10.1f}"
              f"{med['trial_s']:>16.1f}{med['best']:>20.4f}")
        print(f"{'':<10}per run: wall {[round(r['wall'], 1) for r in runs]}, "
              f"trial time {[round(r['trial_s'], 1) for r in runs]}")
    base, pruned = (statistics.median(r["wall"] for r in rows[a]) for a in ARMS)
    folds = [statistics.median(r["folds"] for r in rows[a]) for a in ARMS]
    print(f"fold trainings saved: {1 - folds[1] / folds[0]:.0%}; wall time saved: {1 - pruned / base:.0%}")


if __name__ == "__main__":
    main()
