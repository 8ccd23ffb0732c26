"""Helpers shared by the benchmark scripts: where binaries are, timing of whole processes,
the environment of an `hposweep` subprocess, reading a study's trials back, sizes on disk."""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TypeVar

Side = TypeVar("Side")
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TESTS = REPO / "tests"
# What would steer an `hposweep` subprocess away from what the benchmark set up.
STEERING = ("MLFLOW_TRACKING_URI", "HPOSWEEP_KILL_AT", "HPOSWEEP_TEST_HOLD", "HPOSWEEP_TEST_GATE",
            "HPOSWEEP_WORKER_INDEX")


def quick_mode(doc: str | None) -> bool:
    """``--quick``: tiny sizes that check a script works (its figures mean nothing)."""
    parser = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, to check the script runs; the figures mean nothing")
    return parser.parse_args().quick


def bench_env() -> dict[str, str]:
    """This environment with the test trainers (``fake_trainers``) importable and nothing
    inherited that steers a sweep (tracking URI, kill points, test timing switches)."""
    env = {k: v for k, v in os.environ.items() if k not in STEERING}
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{TESTS}{os.pathsep}{existing}" if existing else str(TESTS)
    return env


def timed_process(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
                  ) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall time of a whole process (start-up included); ``env`` replaces the environment."""
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, proc


def checked_wall(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
                 ) -> float:
    """Like :func:`timed_process`, but a failed command ends the benchmark with its stderr."""
    wall, proc = timed_process(argv, cwd, env)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{tail}")
    return wall


def median_wall(argv: list[str], repeats: int) -> float:
    return statistics.median(timed_process(argv)[0] for _ in range(repeats))


def children_peak_rss_mib() -> float:
    """Peak RSS of the largest child process waited for so far (Linux: KiB units)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue  # removed while we walked: a checkpoint being pruned
    return total


def migrated_mlflow_store(directory: Path) -> Path:
    """An empty MLflow SQLite store with its schema migrated (≈2 s, paid once per store:
    each run gets a copy, like every run of a user's but the first)."""
    from mlflow import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # not its "Creating tables" lines
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "mlflow-template.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def copy_store(template: Path, destination: Path) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, destination)
    return destination


def study_trials(db: Path, study_name: str) -> list[Any]:
    """Every trial of a study kept in a SQLite file, as Optuna's frozen trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.load_study(study_name=study_name, storage=f"sqlite:///{db}").trials


def span_seconds(trials: list[Any]) -> float:
    """First trial start to last trial end, from the study's own timestamps."""
    end = max(t.datetime_complete for t in trials)
    return (end - min(t.datetime_start for t in trials)).total_seconds()


def alternating(sides: tuple[Side, Side], repeats: int) -> list[tuple[Side, Side]]:
    """The order of the two sides in each repetition: A B, B A, A B, ... so that neither
    side always runs first (a warm page cache or a busy neighbour favours one order)."""
    first, second = sides
    return [(first, second) if i % 2 == 0 else (second, first) for i in range(repeats)]
