"""Ctrl-C/SIGTERM that lands inside an MLflow call, on a real SQLite MLflow store.

Interrupts sent at random moments during MLflow writes on SQLite (a loop of them, in one
process, as a dropped interrupt and its redelivery make two) showed both ways the sweep
lost one: a write's connection stays alive in the frames of the interrupt's traceback, and
with it SQLite's lock, so the next write waits 20 s and fails ("database is locked"); or
the write's own clean-up fails that way and its error replaces the interrupt. Either turned
tracking off, so the interrupted sweep left its runs RUNNING (seen once in CI). The
interrupt must stay an interrupt, and the runs must still end.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hposweep.config.loading import load
from hposweep.tracking.tracker import SweepTracker
from tests.conftest import SMOKE
from tests.helpers import mlflow_client


@pytest.fixture
def tracker(workdir: Path) -> tuple[SweepTracker, list[str]]:
    warnings: list[str] = []
    tracker = SweepTracker(load(SMOKE, ["mlflow.experiment=interrupts"]).config, "study", "tiny",
                           warnings.append)
    assert tracker.start_sweep("sweep-1", None, "{}", resumed=False)
    return tracker, warnings


def status(workdir: Path, run_id: str) -> str:
    return mlflow_client(workdir / "outputs").get_run(run_id).info.status


def test_an_interrupt_that_comes_out_of_mlflow_as_its_error_stays_an_interrupt(
        workdir: Path, tracker: tuple[SweepTracker, list[str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The fault injected is the one seen for real: the fold run's creation is interrupted and
    its clean-up then fails with MLflow's error. The sweep unwinds as interrupted, with
    tracking on, and ends the trial run and the parent run KILLED."""
    from mlflow.exceptions import MlflowException

    sweep, warnings = tracker
    trial = sweep.start_trial(0, {"x": 0.5})
    assert trial is not None

    def interrupted_create_run(*args: object, **kwargs: object) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise MlflowException("(sqlite3.OperationalError) database is locked") from None

    monkeypatch.setattr(sweep._client, "create_run", interrupted_create_run)
    with pytest.raises(KeyboardInterrupt):
        sweep.start_fold(trial, 0, 0)
    monkeypatch.undo()
    try:
        raise KeyboardInterrupt  # as trial.py and sweep.py end the runs: while handling it
    except KeyboardInterrupt:
        sweep.end_run(trial, "KILLED", "interrupted")
        sweep.abort_sweep()
    assert warnings == [] and sweep.enabled
    assert status(workdir, trial) == "KILLED"
    assert sweep.parent_run_id is not None and status(workdir, sweep.parent_run_id) == "KILLED"


def test_an_mlflow_failure_while_an_interrupt_is_handled_is_a_failure_not_a_new_interrupt(
        workdir: Path, tracker: tuple[SweepTracker, list[str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ending the runs of an interrupted sweep when MLflow is down: a warning, tracking off,
    and the clean-up goes on (the error's context is the interrupt being handled)."""
    from mlflow.exceptions import MlflowException

    sweep, warnings = tracker
    trial = sweep.start_trial(0, {"x": 0.5})

    def down(*args: object, **kwargs: object) -> None:
        raise MlflowException("connection refused")

    monkeypatch.setattr(sweep._client, "set_terminated", down)
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        sweep.end_run(trial, "KILLED", "interrupted")  # returns: no second interrupt
        cleaned_up = True
    assert cleaned_up and not sweep.enabled
    assert len(warnings) == 1 and "MLflow failed to end a run" in warnings[0]
