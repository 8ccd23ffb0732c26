"""Recovering the trials of dead processes: failed, and retried once with their parameters."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import optuna

from hposweep.results import FAIL_REASON_ATTR, RETRIED_FROM_ATTR, TRIAL_ATTR
from hposweep.study import recovery
from hposweep.study.storage import make_storage
from tests.helpers import dead_owner, opened

STUDY = "recovery"


def study_with_a_dead_trial(url: str) -> int:
    study = optuna.create_study(study_name=STUDY, storage=make_storage(url))
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr(TRIAL_ATTR, {"owner": dead_owner()})
    return trial.number


def test_a_dead_trial_is_failed_and_retried_once_with_its_parameters(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    number = study_with_a_dead_trial(url)
    storage = make_storage(url)
    study = optuna.load_study(study_name=STUDY, storage=storage)

    first = recovery.recover(opened(study, storage), max_retry=3)
    again = recovery.recover(opened(study, storage), max_retry=3)

    assert [t.number for t in first] == [number] and again == []
    dead, retry = study.get_trials()
    assert dead.state.name == "FAIL" and "died" in dead.user_attrs[FAIL_REASON_ATTR]
    assert retry.state.name == "WAITING" and retry.params == dead.params
    assert retry.user_attrs[RETRIED_FROM_ATTR] == number


def test_a_retry_is_never_queued_twice_for_one_trial(tmp_path: Path) -> None:
    study = optuna.create_study(study_name=STUDY, storage=f"sqlite:///{tmp_path / 'study.db'}")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    failed = study.get_trials()[0]

    assert recovery.retry_trial(study, failed, max_retry=3)
    assert not recovery.retry_trial(study, failed, max_retry=3)
    assert len(study.get_trials()) == 2


def test_an_exited_but_unreaped_owner_is_gone() -> None:
    """A SIGKILLed ``--workers`` child stays a zombie until its parent waits for it; its
    pid still answers ``kill(pid, 0)``, but it will never finish its trial."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = {"host": socket.gethostname(), "pid": child.pid,
             "started": recovery.owner_identity_of(child.pid)["started"]}
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    try:
        assert recovery.owner_is_gone(owner)
    finally:
        child.wait()


def test_a_running_owner_is_not_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        owner = {"host": socket.gethostname(), "pid": child.pid,
                 "started": recovery.owner_identity_of(child.pid)["started"]}
        assert not recovery.owner_is_gone(owner)
    finally:
        child.communicate(b"")
