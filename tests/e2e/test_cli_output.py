"""What the small commands print: plain help, a validate verdict, the dry-run's counts, and
a quiet exit when the reader of a pipe leaves early."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SMOKE
from tests.helpers import fake_config, hposweep, process_env

BIN = Path(sys.executable).parent


def test_run_help_shows_arguments_as_they_are_typed() -> None:
    result = hposweep("run", "--help")
    assert result.exit_code == 0
    assert " run [OPTIONS] CONFIG [KEY=VALUE]...\n" in result.stdout
    assert "--workers K " in result.stdout
    for label in ("{CONFIG}", "<list[str]>", "<int range>", "<path>"):
        assert label not in result.stdout


def test_validate_says_valid_and_shows_parameters_as_written() -> None:
    result = hposweep("validate", SMOKE, "study.max_trials=5")
    assert result.exit_code == 0
    assert result.stdout.rstrip().endswith(f"# {SMOKE} with 1 override: valid")
    assert "  batch_size: {type: categorical, choices: [16, 32]}\n" in result.stdout
    assert "  learning_rate: {type: float, low: 0.001, high: 0.02, log: true}\n" in result.stdout
    assert "null, high: null" not in result.stdout


def test_dry_run_counts_one_trial_in_the_singular(workdir: Path) -> None:
    result = hposweep("run", SMOKE, "study.max_trials=1", "--dry-run")
    assert result.exit_code == 0
    assert "would create study 'smoke_tiny-bert' (sqlite): 1 trial to run" in result.stdout


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["validate"]])
def test_a_reader_that_leaves_early_is_no_error(workdir: Path, command: list[str]) -> None:
    """`hposweep status CONFIG | head`: the pipe's reader is gone before the output is
    written (``true`` reads nothing); exit 0, nothing on stderr."""
    shell = (f"{BIN / 'hposweep'} {command[0]} {SMOKE} {' '.join(command[1:])} | true; "
             "exit ${PIPESTATUS[0]}")
    done = subprocess.run(["bash", "-c", shell], cwd=workdir, env=process_env(),
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.parametrize(("command", "first"), [
    (["status"], True), (["run"], True), (["run", "--dry-run"], False)])
def test_each_command_says_which_output_dir_it_uses(workdir: Path, command: list[str],
                                                    first: bool) -> None:
    """A config in another directory: its relative output_dir is the working directory's,
    and status (no study there), the dry run (after its plan) and the run (before it
    starts the study) say so."""
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    result = hposweep(command[0], fake_config(elsewhere), "study.max_trials=1",
                      "k_fold.enabled=false", *command[1:])
    assert result.exit_code == 0, result.stderr
    said = result.stdout.splitlines()
    line = (f"output_dir: {workdir / 'outputs'} ('outputs' is relative to the working "
            "directory)")
    assert line in said
    study = next(i for i, text in enumerate(said) if "'fake_fake'" in text)
    assert (said.index(line) < study) == first


def test_an_absolute_output_dir_is_named_as_it_is(workdir: Path) -> None:
    result = hposweep("status", fake_config(workdir), f"output_dir={workdir / 'mine'}")
    assert result.stdout.splitlines()[0] == f"output_dir: {workdir / 'mine'}"
