"""User strings reach the terminal as written: never parsed as rich markup or emoji codes,
in rich (TTY) and plain (log) mode alike, while our own styling stays."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hposweep.console.reports import SweepConsole
from hposweep.reports.status import StudyStatus
from hposweep.results import BackboneResult, TrialRow
from tests.helpers import hposweep

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
# A closing tag that matches nothing (MarkupError), an emoji code, an opening tag.
EVIL = "[/x]:x:[bold]"
CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(params=["rich", "plain"])
def console(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> SweepConsole:
    """A SweepConsole as the CLI makes it, on a terminal (rich) or not (plain)."""
    monkeypatch.setenv("TTY_COMPATIBLE", "1" if request.param == "rich" else "0")
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    made = SweepConsole()
    assert made.mode == request.param
    return made


def lines(text: str) -> list[str]:
    """What a reader sees: escape sequences gone, each line as its last redraw left it."""
    return [line.split("\r")[-1].rstrip() for line in CSI.sub("", text).split("\n")]


def rows(text: str) -> list[list[str]]:
    """The cells of each table or panel line, borders left out."""
    return [[cell.strip() for cell in re.split(r"[│┃|]", line)[1:-1]] for line in lines(text)]


def cells(text: str) -> set[str]:
    """Every table or panel cell's text."""
    return {cell for row in rows(text) for cell in row}


def test_messages_are_plain_text(console: SweepConsole, capsys: pytest.CaptureFixture[str]) -> None:
    console.warn(EVIL)
    console.error(EVIL)
    console.info(EVIL)
    out, err = capsys.readouterr()
    assert lines(err) == [f"warning: {EVIL}", f"error: {EVIL}", ""]
    assert lines(out) == [EVIL, ""]


def test_sweep_events_print_user_values_literally(
        console: SweepConsole, capsys: pytest.CaptureFixture[str]) -> None:
    console.sweep_started(EVIL, EVIL, resumed=False, done=0, total=2)
    console.trial_started(0, {EVIL: EVIL})
    console.trial_finished(0, "FAIL", None, reason=EVIL)
    console.trial_started(1, {EVIL: EVIL})
    console.trial_finished(1, "COMPLETE", 0.5, kept=Path(EVIL))
    console.sweep_finished(BackboneResult(
        EVIL, EVIL, "sqlite", False, "max_trials", "", 2, 1, 0, 1, 2, "loss", best_trial=1, best_value=0.5,
        best_params={EVIL: EVIL}, checkpoint=EVIL,
        trials=[TrialRow(0, "FAIL", None, {EVIL: EVIL}, 1.0, reason=EVIL),
                TrialRow(1, "COMPLETE", 0.5, {EVIL: EVIL}, 1.0)]))
    out = capsys.readouterr().out
    seen = lines(out)
    assert f"{EVIL}: starting study '{EVIL}' (0/2 trials finished)" in seen
    assert f"trial 0 FAIL: {EVIL}" in seen
    assert f"trial 1 COMPLETE 0.5000 (new best, checkpoint kept: {EVIL})" in seen
    if console.mode == "plain":
        assert f"trial 0 started: {EVIL}={EVIL}" in seen
    else:  # the live progress line names the backbone
        assert f"{EVIL} trial 1" in CSI.sub("", out)
    assert f"{EVIL}: trials" in seen  # the table's title
    assert {EVIL, f"params: {EVIL}={EVIL}", f"checkpoint: {EVIL}"} <= cells(out)


def test_reading_commands_print_user_values_literally(
        console: SweepConsole, capsys: pytest.CaptureFixture[str]) -> None:
    found = StudyStatus(EVIL, EVIL, "sqlite", True, 2, EVIL, finished=1, best_trial=0,
                        best_value=0.5, best_params={EVIL: EVIL}, best_fold_values=[0.5],
                        checkpoint=EVIL, pending=[EVIL],
                        trials=[TrialRow(0, "COMPLETE", 0.5, {EVIL: EVIL}, 1.0, reason=EVIL)])
    console.study_status(StudyStatus(EVIL, EVIL, "sqlite", False, 2, "loss"))
    console.study_status(found)
    console.best([found])
    console.compare([found])
    out = capsys.readouterr().out
    assert f"{EVIL}: no study '{EVIL}' yet (sqlite); `hposweep run` starts it" in lines(out)
    assert {EVIL, f"params: {EVIL}={EVIL}", f"checkpoint: {EVIL}",
            f"best trial: 0  {EVIL} = 0.5000"} <= cells(out)
    assert [EVIL, "1/2 (1 to go)", "0.5000"] in [row[:3] for row in rows(out)]  # compare
    assert f"{EVIL} ({EVIL})" in out  # the best panel's title


def test_our_styling_stays(monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("NO_COLOR", raising=False)
    console = SweepConsole()
    console.warn(EVIL)
    console.error(EVIL)
    console.study_status(StudyStatus(EVIL, "s", "sqlite", False, 2, "loss"))
    out, err = capsys.readouterr()
    assert "\x1b[33mwarning:\x1b[0m" in err and "\x1b[31merror:\x1b[0m" in err
    assert f"\x1b[1m{EVIL}\x1b[0m" in out


@pytest.mark.parametrize(("overrides", "message"), [
    (["data.train=[/x].conll"],
     "bad override 'data.train=[/x].conll': its value '[/x].conll' is not valid YAML "
     "(did not find expected <document start>)"),
    (["data.synthetic=null", "data.train=a:x:[b].conll"],
     "override 'data.train=a:x:[b].conll': data.train: file not found: a:x:[b].conll"),
])
def test_cli_error_quotes_the_value_literally(overrides: list[str], message: str) -> None:
    result = hposweep("validate", SMOKE, *overrides)
    assert result.exit_code == 2 and result.stderr.startswith(f"error: {message}")
    assert result.stderr.count("\n") == 1


def test_dry_run_prints_the_config_and_plan_literally(
        console: SweepConsole, capsys: pytest.CaptureFixture[str]) -> None:
    console.dry_run(f"study:\n  name: {EVIL}\n",
                    [StudyStatus(EVIL, EVIL, "sqlite", False, 2, "loss")])
    assert lines(capsys.readouterr().out) == [
        "study:", f"  name: {EVIL}", f"{EVIL}: would create study '{EVIL}' (sqlite): 2 trials to run",
        ""]


def test_validate_prints_the_merged_config_literally() -> None:
    result = hposweep("validate", SMOKE, "mlflow.experiment=a:x:[b]")
    assert result.exit_code == 0
    assert "  experiment: a:x:[b]\n" in result.stdout
