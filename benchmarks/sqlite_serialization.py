"""What ``BEGIN IMMEDIATE`` on SQLite studies costs and buys (hposweep.study._serialize_sqlite).

Cost: ms per trial of 200 instant trials in one process. Benefit: in how many of 20 tries
4 processes, released together, popped one queued trial twice (20 queued, 5 asks each).
Baseline: the same storage without the serialization, in the same run.
"""

from __future__ import annotations

import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

from hposweep.study.storage import make_storage

WORKERS, ASKS, TRIES, TRIALS = 4, 5, 20, 200


def storage(url: str, serialize: bool) -> Any:
    if serialize:
        return make_storage(url)
    # The baseline: Optuna's own SQLite storage, with the same busy timeout.
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})


def ms_per_trial(url: str, serialize: bool) -> float:
    study = optuna.create_study(storage=storage(url, serialize))
    start = time.perf_counter()
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=TRIALS)
    return (time.perf_counter() - start) / TRIALS * 1000


def _ask(url: str, serialize: bool, barrier: Any) -> list[int]:
    study = optuna.load_study(study_name="queue", storage=storage(url, serialize))
    barrier.wait()
    return [study.ask().number for _ in range(ASKS)]


def popped_twice(url: str, serialize: bool) -> bool:
    study = optuna.create_study(study_name="queue", storage=storage(url, serialize))
    for _ in range(WORKERS * ASKS):
        study.enqueue_trial({"x": 0.5}, skip_if_exists=False)
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager, context.Pool(WORKERS) as pool:
        barrier = manager.Barrier(WORKERS)
        asked = pool.starmap(_ask, [(url, serialize, barrier)] * WORKERS)
    numbers = [n for numbers in asked for n in numbers]
    return len(set(numbers)) < len(numbers)


def measure(serialize: bool, scratch: Path) -> tuple[float, int]:
    scratch.mkdir()
    costs = [ms_per_trial(f"sqlite:///{scratch / f'cost{i}.db'}", serialize) for i in range(3)]
    races = sum(popped_twice(f"sqlite:///{scratch / f'race{i}.db'}", serialize)
                for i in range(TRIES))
    return statistics.median(costs), races


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print(f"SQLite study: ms/trial over {TRIALS} instant trials (median of 3); tries of "
          f"{TRIES} in which {WORKERS} processes popped one queued trial twice")
    print(f"{'':28}{'ms/trial':>10}{'popped twice':>14}")
    with tempfile.TemporaryDirectory() as scratch:
        for label, serialize in [("Optuna's default", False), ("BEGIN IMMEDIATE", True)]:
            cost, races = measure(serialize, Path(scratch) / label.replace(" ", "_"))
            print(f"{label:28}{cost:10.1f}{races:>11}/{TRIES}")


if __name__ == "__main__":
    main()
