"""The study lock: a process waits for as long as another holds it, and says so."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from hposweep.study.open import LOCK_NOTICE_S, StudyLock


def test_a_held_study_lock_is_waited_for_with_one_notice_then_taken(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The holder may be another worker's final stage (hours of training): the waiting
    process says what it waits for, and takes the lock when it is released, without a
    time limit that would end it with an error (its second wait has none)."""
    path = tmp_path / ".study.lock"
    holder = FileLock(path)
    holder.acquire()
    timeouts: list[object] = []
    acquire = FileLock.acquire

    def recorded(lock: FileLock, *args: object, **kwargs: object) -> object:
        timeouts.append(kwargs.get("timeout"))
        return acquire(lock, *args, **kwargs)

    monkeypatch.setattr(FileLock, "acquire", recorded)
    notices: list[str] = []
    noticed, taken = threading.Event(), threading.Event()

    def on_wait(message: str) -> None:
        notices.append(message)
        noticed.set()

    def wait_for_the_lock() -> None:
        with StudyLock(path, on_wait):
            taken.set()

    waiter = threading.Thread(target=wait_for_the_lock)
    waiter.start()
    assert noticed.wait(timeout=120), "a wait for a held lock is said"
    assert not taken.is_set(), "the lock is held: the waiter must not have it"
    holder.release()
    waiter.join(timeout=120)
    assert taken.is_set() and not waiter.is_alive()
    assert timeouts[:2] == [LOCK_NOTICE_S, None], "the wait after the notice has no limit"
    assert notices == [f"waiting for the study lock ({path}): another process of the study "
                       "holds it (a trial's admission, or its final logging or final stage, "
                       "which may take long)"]


def test_a_free_study_lock_is_taken_without_a_notice(tmp_path: Path) -> None:
    notices: list[str] = []
    with StudyLock(tmp_path / ".study.lock", notices.append), pytest.raises(Timeout):
        FileLock(tmp_path / ".study.lock").acquire(timeout=0)  # held: no other taker has it
    assert notices == []
