"""Epochs saved by ``train.early_stopping`` on the smoke sweep (configs/smoke.yaml, its
pruner on): epochs trained over all trials and folds, and the best value, without early
stopping and with ``patience: 1``; the smoke config's 3 epochs, and 10 epochs (where a
fold has room to stop). Counts come from the study (each trained epoch is one reported
step); MLflow is off on both sides (it does not change what is trained)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from _common import BIN, REPO, checked_wall, study_trials

SIDES = {"no early stopping": [], "early_stopping.patience=1": ["train.early_stopping.patience=1"]}


def sweep(epochs: int, extra: list[str]) -> tuple[int, float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        wall = checked_wall([str(BIN / "hposweep"), "run", str(REPO / "configs/smoke.yaml"),
                             f"output_dir={tmp}/outputs", f"train.epochs={epochs}",
                             "mlflow.enabled=false", "--json", *extra], cwd=Path(tmp))
        trials = study_trials(Path(tmp) / "outputs/hpo/smoke_tiny-bert/study.db", "smoke_tiny-bert")
    epochs_trained = sum(len(t.intermediate_values) for t in trials)
    best = max(t.value for t in trials if t.value is not None)
    return epochs_trained, best, wall


def main() -> None:
    print(f"{'epochs':>7}  {'side':<28}{'epochs trained':>15}{'best value':>12}{'wall s':>8}")
    for epochs in (3, 10):
        results = {name: sweep(epochs, extra) for name, extra in SIDES.items()}
        for name, (trained, best, wall) in results.items():
            print(f"{epochs:>7}  {name:<28}{trained:>15}{best:>12.4f}{wall:>8.1f}")
        base, stopped = results["no early stopping"][0], results["early_stopping.patience=1"][0]
        print(f"{epochs:>7}  epochs saved: {base - stopped} of {base} ({1 - stopped / base:.0%})")


if __name__ == "__main__":
    main()
