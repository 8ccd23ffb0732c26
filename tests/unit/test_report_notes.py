"""What the trial table and the status panel say about trials that are not like the
others (queued parameters, an unmet constraint) and about a study that stopped."""

from __future__ import annotations

import io
import re

import optuna
import pytest
from rich.console import Console

from hposweep.console.reports import SweepConsole, trial_table
from hposweep.reports.status import StudyStatus
from hposweep.results import WARM_START_ATTR, TrialRow


def rendered(rows: list[TrialRow], width: int = 200) -> str:
    screen = Console(width=width, record=True, file=io.StringIO())
    screen.print(trial_table("t", rows, ["score"], None, width))
    return screen.export_text()


def note_of(text: str, number: int) -> str:
    (line,) = [line for line in text.splitlines() if line.startswith(f"│ {number} ")]
    return line.split("│")[-2].strip()


def test_queued_and_infeasible_trials_are_marked_in_the_table() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"x": 0.5}, user_attrs={WARM_START_ATTR: {
        "source": "study:other", "from_trial": 7, "key": "warm_start:other"}})
    study.enqueue_trial({"x": 0.9}, user_attrs={WARM_START_ATTR: {
        "source": "enqueue", "from_trial": 0, "key": "enqueue:x"}})
    for violation in (-1.0, 2.5, -1.0):  # a warm start that meets it, an enqueued one, a sampled one
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        trial.set_constraint("latency_ms <= 10", violation)
        study.tell(trial, 0.5)
    text = rendered([TrialRow.from_trial(t) for t in study.trials])
    assert note_of(text, 0) == "queued from trial 7 of 'other'"
    assert note_of(text, 1) == "queued from study.enqueue[0]; infeasible: latency_ms <= 10 not met"
    assert note_of(text, 2) == ""


def test_the_duration_column_says_what_it_counts() -> None:
    header = next(line for line in rendered([TrialRow(0, "COMPLETE", 0.5, {"x": 1}, 2.5)])
                  .splitlines() if "state" in line)
    assert [cell.strip() for cell in re.split("[│┃]", header)[1:-1]] == [
        "#", "state", "score", "x", "seconds"]


@pytest.mark.parametrize("stopped", [None, "study.budget.trial_hours is spent (1.0 h)"])
def test_a_stopped_study_has_no_trials_to_go(stopped: str | None,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    SweepConsole("plain").study_status(StudyStatus(
        "bb", "s", "sqlite", True, 20, "score", finished=3, stopped=stopped,
        trials=[TrialRow(0, "COMPLETE", 0.5, {"x": 1}, 2.5)]))
    out = capsys.readouterr().out
    if stopped:
        assert "finished: 3/20 " in out and "to go" not in out and f"stopped: {stopped}" in out
    else:
        assert "finished: 3/20 (17 to go)" in out
