"""The trial table laid out for the width there is: at 80 (a terminal) and 120 (logs) no
note is wrapped into a narrow column, no value is cut, no line is wider than the width."""

from __future__ import annotations

import re

import pytest
from rich.console import Console

from hposweep.console.reports import SweepConsole, trial_table
from hposweep.reports.status import StudyStatus
from hposweep.results import TrialRow

PARAMS = {"learning_rate": 0.00123, "batch_size": 16, "dropout": 0.123, "weight_decay": 0.0456,
          "warmup_ratio": 0.15}
PRUNED = "pruned: macro-f1-span=0.0000 (fold 1/2 epoch 2)"
TRIALS = [TrialRow(0, "COMPLETE", 0.81234, PARAMS, 12.3),
          TrialRow(1, "PRUNED", 0.1, PARAMS, 4.5, reason=PRUNED),
          TrialRow(2, "FAIL", None, PARAMS, 1.0, reason="interrupted"),
          TrialRow(3, "COMPLETE", 0.7, PARAMS, 11.0, retried_from=2)]


def rendered(width: int, trials: list[TrialRow] = TRIALS) -> list[str]:
    console = Console(width=width, force_terminal=False, record=True)
    console.print(trial_table("smoke_tiny-bert: trials", trials, ["macro-f1-span"], 0, width))
    return console.export_text().splitlines()


@pytest.mark.parametrize("width", [80, 120])
def test_notes_are_whole_on_one_line(width: int) -> None:
    lines = rendered(width)
    assert max(map(len, lines)) <= width
    for note in (PRUNED, "interrupted", "retry of 2"):
        assert any(note in line for line in lines), (note, lines)


@pytest.mark.parametrize("width", [80, 120])
def test_values_are_never_cut(width: int) -> None:
    text = "\n".join(rendered(width))
    for value in ("0.00123", "0.0456", "COMPLETE", "0.8123 *", "12.3"):
        assert re.search(rf"│ {re.escape(value)} +│", text), value


def test_notes_stay_beside_their_row_when_there_is_room() -> None:
    lines = rendered(200)
    (row,) = [line for line in lines if line.startswith("│ 1 ")]
    assert "PRUNED" in row and PRUNED in row


def test_a_table_without_notes_has_no_note_column() -> None:
    lines = rendered(80, [TRIALS[0]])
    assert not any("note" in line for line in lines)


@pytest.mark.parametrize("width", [80, 120])
def test_status_shows_notes_whole(width: int, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    console = SweepConsole()
    assert console.out.width == width
    console.study_status(StudyStatus("tiny-bert", "smoke_tiny-bert", "sqlite", True, 4,
                                     "macro-f1-span", finished=2, best_trial=0,
                                     best_value=0.81, trials=TRIALS))
    lines = capsys.readouterr().out.splitlines()
    for note in ("interrupted", "retry of 2", PRUNED):
        assert any(note in line for line in lines), note


def test_a_study_of_several_objectives_shows_a_column_per_objective() -> None:
    trials = [TrialRow(0, "COMPLETE", 0.8123, {"x": 0.5}, 2.0, values=[0.8123, 14.25]),
              TrialRow(1, "FAIL", None, {"x": 0.9}, 1.0, reason="boom")]
    console = Console(width=120, force_terminal=False, record=True)
    console.print(trial_table("t", trials, ["macro-f1-span", "latency_ms"], 0, 120))
    lines = console.export_text().splitlines()
    header = next(line for line in lines if "macro-f1-span" in line)
    assert header.index("macro-f1-span") < header.index("latency_ms") < header.index(" x ")
    cells = {line.split("│")[2].strip(): [c.strip() for c in line.split("│")[3:6]]
             for line in lines if "COMPLETE" in line or "FAIL" in line}
    assert cells == {"COMPLETE": ["0.8123 *", "14.2500", "0.5"], "FAIL": ["-", "-", "0.9"]}
