"""Telling a dead trial from a live one, and retrying it with the same hyperparameters.

Each trial records its owner (host, pid, process start time) under the study lock, in
the same locked step that creates it. A RUNNING trial whose owner is on this host and
no longer alive, or that has no owner when looked at under the lock, is failed and
retried at once, with no grace period. Trials owned by other hosts are left to Optuna's heartbeat (RDB
storages, SQLite included), which fails them after ``grace_period`` and calls
:func:`retry_trial`. The journal storage has no heartbeat: there only same-host
owners are detected. A trial stopped by Ctrl-C/SIGTERM queues its own retry as it
ends (FAIL, reason "interrupted"): the next run, or another worker, continues it.

Several workers may look at one dead trial at once: the RUNNING → FAIL transition is
the claim (only one process makes it), and no trial is retried twice.

Retries are compatible with Optuna's ``RetryHeartbeatStaleTrialCallback``: the new
WAITING trial carries the system attrs ``failed_trial`` (the original trial) and
``retry_history``, and the user attr ``retried_from``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hposweep.results import (
    FAIL_REASON_ATTR,
    GRID_POINT_ATTR,
    RETRIED_FROM_ATTR,
    WARM_START_ATTR,
    owner_of,
)


def owner_identity() -> dict[str, Any]:
    """This process, as a trial records its owner."""
    return owner_identity_of(os.getpid())


def owner_identity_of(pid: int) -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": pid, "started": _process_start(pid)}


def _process_start(pid: int) -> str | None:
    """The process' start time in clock ticks since boot (Linux), to tell a reused pid."""
    fields = _process_stat(pid)
    return fields[19] if fields else None


def _process_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state first); None when
    there is no such process or no ``/proc``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def owner_is_gone(owner: dict[str, Any] | None) -> bool:
    """True only when we can be sure: the owner ran on this host and is not running now,
    or the trial has no owner (read under the study lock, that means its process died
    between creating the trial and recording itself: see :func:`hposweep.study.open.study_lock`)."""
    if not owner:
        return True
    if owner.get("host") != socket.gethostname():
        return False
    pid = int(owner["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    fields = _process_stat(pid)  # one read: its state and its start time
    if fields is not None and fields[0] == "Z":  # exited, not yet reaped by its parent
        return True
    started = owner.get("started")
    return started is not None and fields is not None and fields[19] != started


def root_trial(trial: Any) -> int:
    """The original trial of a retry series (the trial itself when it is no retry).

    Read from the user attrs, which a running ``optuna.Trial`` exposes (system attrs not).
    """
    return int(trial.user_attrs.get(RETRIED_FROM_ATTR, trial.number))


def retry_trial(study: Any, trial: Any, max_retry: int) -> bool:
    """Queue a WAITING copy of ``trial`` (same params). False when retries are used up or
    the trial was retried already."""
    import optuna

    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > max_retry or trial.number in _retried(study):
        return False
    carried = {k: trial.user_attrs[k] for k in (WARM_START_ATTR, GRID_POINT_ATTR) if k in trial.user_attrs}
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING, params=trial.params,
        distributions=trial.distributions, user_attrs={RETRIED_FROM_ATTR: history[0], **carried},
        system_attrs={"failed_trial": history[0], "retry_history": history},
    ))
    return True


def _retried(study: Any) -> set[int]:
    return {n for t in study.get_trials(deepcopy=False)
            for n in t.system_attrs.get("retry_history", [])}


def heartbeat_callback(max_retry: int) -> Callable[[Any, Any], None]:
    """For ``RDBStorage(heartbeat_stale_trial_callback=...)``: retry what the heartbeat failed."""

    def callback(study: Any, trial: Any) -> None:
        retry_trial(study, trial, max_retry)

    return callback


def recover(opened: Any, max_retry: int, trials: list[Any] | None = None) -> list[Any]:
    """Fail the RUNNING trials of dead same-host owners (and ownerless ones) and retry them.

    Call under the study lock; ``trials``: the study's trials when the caller has just
    read them. Returns the trials failed here, to tell the user. Safe in
    several workers at once: every storage changes a state atomically (RDB row locks,
    SQLite through ``BEGIN IMMEDIATE`` from :mod:`hposweep.study.storage`, the journal's log order).
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    if trials is None:
        trials = opened.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    recovered = []
    for trial in (t for t in trials if t.state == TrialState.RUNNING):
        owner = owner_of(trial)
        if not owner_is_gone(owner):
            continue
        trial_id = opened.trial_id(trial.number)
        why = (f"its process ({owner['pid']} on {owner['host']}) died" if owner else
               "its process died as the trial was created")
        try:
            opened.storage.set_trial_user_attr(trial_id, FAIL_REASON_ATTR, why)
            claimed = opened.storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:  # another worker failed it first
            continue
        if claimed:
            recovered.append(trial)
            retry_trial(opened.study, trial, max_retry)  # its params and history are unchanged
    return recovered
