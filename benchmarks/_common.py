"""Helpers shared by the benchmark scripts: where binaries are, timing of whole processes."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def timed_process(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
                  ) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, check=False)
    return time.perf_counter() - start, proc


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
