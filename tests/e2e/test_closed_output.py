"""Output nobody reads stops nothing: `hposweep run ... | head -3` (the reader leaves while
a trial runs) and `2>&1 | head` run the sweep to its end, with its usual exit code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import fake_config, load_study, mlflow_client, process_env, runs_by_kind

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(("workers", "merged"), [
    ([], False), ([], True), (["--workers", "2"], True)],
    ids=["stdout", "stdout-and-stderr", "workers"])
def test_a_reader_that_leaves_mid_sweep_stops_nothing(workdir: Path, workers: list[str],
                                                      merged: bool) -> None:
    """Every trial waits at a door until the reader has read a trial's start and closed
    the pipe: each line after that (trial ends, what the trainer prints) meets a closed pipe."""
    door = workdir / "door"
    log = (workdir / "stderr.log").open("w+")
    proc = subprocess.Popen(
        [str(BIN / "hposweep"), "run", str(fake_config(workdir)), "study.max_trials=4",
         "k_fold.enabled=false", "train.trainer=fake_trainers:talkative", *workers],
        cwd=workdir, env=process_env(HPOSWEEP_TEST_DOOR=str(door)), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merged else log, text=True)
    assert proc.stdout is not None
    read = []
    for line in proc.stdout:  # a trial has started, and waits at the door
        read.append(line)
        if re.search(r"trial \d+ started", line):
            break
    proc.stdout.close()
    door.touch()
    assert proc.wait(timeout=300) == 0, "".join(read)
    trials = load_study(workdir / "outputs", "fake_fake").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4, [t.user_attrs for t in trials]
    (parent,) = runs_by_kind(mlflow_client(workdir / "outputs"), "fake")["parent"]
    assert parent.info.status == "FINISHED"
    log.seek(0)
    assert not re.search(r"error|Traceback|Exception", log.read())
