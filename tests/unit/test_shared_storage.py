"""Several processes on one study at the same moment: every storage hposweep opens makes
Optuna's read-check-write steps atomic (SQLite needs ``BEGIN IMMEDIATE`` for that)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

from hposweep.results import RETRIED_FROM_ATTR, TRIAL_ATTR
from hposweep.study import recovery
from hposweep.study.storage import make_storage
from tests.helpers import dead_owner, opened

pytestmark = pytest.mark.slow  # each test starts processes that meet at a barrier

STUDY = "shared"
WORKERS = 4
ASKS = 5
DEAD = 5


@pytest.fixture(params=["sqlite", "journal", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return f"postgresql://postgres@127.0.0.1/{request.getfixturevalue('postgres_db')}"
    return {"sqlite": f"sqlite:///{tmp_path / 'study.db'}",
            "journal": f"journal:{tmp_path / 'study.log'}"}[request.param]


def _at_the_barrier(step: Callable[[Any, Any], Any], url: str, barrier: Any, out: Any) -> None:
    storage = make_storage(url)
    study = optuna.load_study(study_name=STUDY, storage=storage)
    barrier.wait()
    try:
        out.put(("ok", step(study, storage)))
    except Exception as exc:  # reported to the test, which names it
        out.put(("error", f"{type(exc).__name__}: {exc}"))


def together(step: Callable[[Any, Any], Any], url: str) -> list[Any]:
    """Run ``step(study, storage)`` in WORKERS processes released at one barrier."""
    context = multiprocessing.get_context("fork")
    barrier, out = context.Barrier(WORKERS), context.Queue()
    processes = [context.Process(target=_at_the_barrier, args=(step, url, barrier, out))
                 for _ in range(WORKERS)]
    for process in processes:
        process.start()
    results = [out.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    errors = [detail for status, detail in results if status == "error"]
    assert not errors, errors
    return [detail for _, detail in results]


def ask_numbers(study: Any, storage: Any) -> list[int]:
    return [study.ask().number for _ in range(ASKS)]


def recover(study: Any, storage: Any) -> list[int]:
    return [t.number for t in recovery.recover(opened(study, storage), max_retry=3)]


def test_workers_asking_together_never_run_one_queued_trial_twice(url: str) -> None:
    study = optuna.create_study(study_name=STUDY, storage=make_storage(url))
    for _ in range(WORKERS * ASKS):
        study.enqueue_trial({"x": 0.5}, skip_if_exists=False)

    numbers = [n for asked in together(ask_numbers, url) for n in asked]

    assert sorted(numbers) == list(range(WORKERS * ASKS)), "each queued trial runs once"


def test_workers_recovering_together_retry_each_dead_trial_exactly_once(url: str) -> None:
    study = optuna.create_study(study_name=STUDY, storage=make_storage(url))
    owner = dead_owner()
    for _ in range(DEAD):
        study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}).set_user_attr(
            TRIAL_ATTR, {"owner": owner})

    claimed = together(recover, url)

    assert sorted(n for numbers in claimed for n in numbers) == list(range(DEAD))
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL"] * DEAD + ["WAITING"] * DEAD
    assert sorted(t.user_attrs[RETRIED_FROM_ATTR] for t in trials[DEAD:]) == list(range(DEAD))
