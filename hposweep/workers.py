"""``hposweep run --workers K``: K trials at once on one machine, as K processes (not
threads: the GIL and torch's thread pools) sharing the study through its storage.

Each worker gets ``cores // K`` threads (``OMP_NUM_THREADS``, which torch reads at start)
and, when GPUs are visible, one of them round-robin (``CUDA_VISIBLE_DEVICES``). The
default SQLite storage is shared safely: writers wait on its lock (60 s busy timeout)
instead of failing. This process only starts, watches and reports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

from hposweep.config import LoadedConfig
from hposweep.console import SweepConsole
from hposweep.errors import UserError

POLL_SECONDS = 2.0  # how often the progress line is refreshed from the study


def visible_gpus(device: str) -> list[str]:
    if device == "cpu":
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d for d in listed.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def worker_environments(k: int, device: str) -> list[dict[str, str]]:
    threads = str(max(1, (os.cpu_count() or 1) // k))
    gpus = visible_gpus(device)
    envs = []
    for i in range(k):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        envs.append(env)
    return envs


def run_workers(loaded: LoadedConfig, overrides: list[str], k: int,
                console: SweepConsole) -> int:
    """Start K ``hposweep run`` workers, show progress, return the combined exit code."""
    from hposweep.status import study_status

    cfg = loaded.config
    if not cfg.checkpoint.enabled and not cfg.study.storage:
        raise UserError("--workers needs a shared study: set checkpoint.enabled=true or "
                        "study.storage")
    command = [sys.executable, "-m", "hposweep", "run", str(loaded.path), *overrides,
               "study.n_workers=1", "--json"]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
             for env in worker_environments(k, cfg.train.device)]
    console.info(f"started {k} workers (pids {', '.join(str(p.pid) for p in procs)})")
    previous = signal.signal(signal.SIGTERM, lambda *_: [p.terminate() for p in procs])
    shown = None
    try:
        while any(p.poll() is None for p in procs):
            running = next(p for p in procs if p.poll() is None)
            with contextlib.suppress(subprocess.TimeoutExpired):
                running.wait(timeout=POLL_SECONDS)  # returns early when that worker ends
            progress = ", ".join(f"{s.backbone} {s.finished}/{s.max_trials}"
                                 for s in (study_status(cfg, b) for b in cfg.backbones))
            if progress != shown:
                console.info(f"finished trials: {progress}")
                shown = progress
    except KeyboardInterrupt:  # the terminal sent SIGINT to the workers too
        for p in procs:
            p.wait()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    codes = [p.returncode for p in procs]
    for code in (130, 143, -signal.SIGTERM, 2):
        if code in codes:
            return 143 if code == -signal.SIGTERM else code
    statuses = [study_status(cfg, b) for b in cfg.backbones]
    console.best(statuses)
    return 0 if all(s.best_trial is not None for s in statuses) else 1
