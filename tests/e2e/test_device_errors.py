"""A fatal CUDA error (a device-side assert, an illegal memory access) poisons the process's
GPU context: every later trial of that process would fail too, blamed on its parameters.
It stops the process instead (exit 1, one line), with the trial queued again; the next run
retries it with the same parameters."""

from __future__ import annotations

from pathlib import Path

import pytest

from hposweep.results import RETRIED_FROM_ATTR
from tests.helpers import FAKE_CONFIG, fake_config, hposweep, load_study


def test_a_fatal_cuda_error_stops_the_process_and_the_next_run_retries_the_trial(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FATAL_MARKER", str(workdir / "asserted"))
    config = fake_config(workdir, FAKE_CONFIG.replace("quadratic", "device_assert_once"))
    first = hposweep("run", config, "study.max_trials=3")
    assert first.exit_code == 1, first.stdout + first.stderr
    assert first.stderr.splitlines()[-1] == (
        "error: trial 1: CUDA error: device-side assert triggered: this process's device is "
        "unusable, so it stops; the trial is queued again with the same parameters for the "
        "next `hposweep run` (or another worker)")
    assert "Traceback" not in first.stderr
    trials = load_study("outputs", "fake_fake").trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "WAITING"], "no trial after it"
    assert trials[1].user_attrs["fail_reason"] == "trial 1: CUDA error: device-side assert triggered"
    assert trials[2].params == trials[1].params

    again = hposweep("run", config, "study.max_trials=3")
    assert again.exit_code == 0, again.stdout + again.stderr
    trials = load_study("outputs", "fake_fake").trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[2].user_attrs[RETRIED_FROM_ATTR] == 1
