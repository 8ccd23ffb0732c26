"""Named points where a test can kill this process for real (SIGKILL, no cleanup), or hold
it until other processes reach the same point (to force a race, not hope for one).

``HPOSWEEP_KILL_AT=<point>`` in the environment arms one kill point; ``HPOSWEEP_OOM_ABOVE``
makes large forward passes run out of memory (:func:`memory_point`).
``HPOSWEEP_BARRIER_AT=<point>`` with ``HPOSWEEP_BARRIER_DIR=<dir>`` and
``HPOSWEEP_BARRIER_PARTIES=<n>`` holds each process at that point until ``n`` processes
are there (each leaves a file named by its pid in the dir), at most 60 s. Production runs
never set them; the crash-safety and race tests do.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENV_VAR = "HPOSWEEP_KILL_AT"
BARRIER_ENV = "HPOSWEEP_BARRIER_AT"


def kill_point(name: str) -> None:
    if os.environ.get(ENV_VAR) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def barrier_point(name: str) -> None:
    if os.environ.get(BARRIER_ENV) != name:
        return
    directory = Path(os.environ["HPOSWEEP_BARRIER_DIR"])
    parties = int(os.environ["HPOSWEEP_BARRIER_PARTIES"])
    (directory / str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(list(directory.iterdir())) < parties and time.monotonic() < deadline:
        time.sleep(0.005)  # polls the condition itself: the other processes' arrival


OOM_ENV = "HPOSWEEP_OOM_ABOVE"


def memory_point(sequences: int) -> None:
    """``HPOSWEEP_OOM_ABOVE=<n>``: a forward pass over more than ``n`` sequences raises
    torch's out-of-memory error, as a GPU too small for that batch would."""
    limit = os.environ.get(OOM_ENV)
    if limit is not None and sequences > int(limit):
        import torch

        raise torch.OutOfMemoryError(f"CUDA out of memory (injected: a forward pass over "
                                     f"{sequences} sequences, more than {limit})")
