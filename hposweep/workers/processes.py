"""``hposweep run --workers K``: K trials at once on one machine, as K processes (not
threads: the GIL and torch's thread pools) sharing the study through its storage.

Each worker gets ``cores // K`` threads (``OMP_NUM_THREADS``, which torch reads at start;
the cores this process may use, a Slurm or taskset allocation) and, when GPUs are visible,
one of them: worker ``i`` sees only GPU ``i mod G`` (``CUDA_VISIBLE_DEVICES``), as its
``cuda:0``; with more workers than GPUs they share. The
default SQLite storage is shared safely: writers wait on its lock (60 s busy timeout)
instead of failing. This process only starts, watches and reports: each worker sends
its events on its stdout (:mod:`hposweep.workers.events`), the parent renders them
(:mod:`hposweep.workers.view`); everything else a worker prints goes to
``{output_dir}/hpo/workers/worker-N.log``.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hposweep.checkpoints.layout import OutputLayout
from hposweep.config.schema import LoadedConfig
from hposweep.console.live import LiveConsole
from hposweep.errors import ConfigError, UserError, reported_os_errors
from hposweep.results import BackboneResult
from hposweep.workers.events import WORKER_ENV
from hposweep.workers.view import WorkersView

POLL_SECONDS = 1.0  # how long the parent waits for an event before checking its workers


def visible_gpus(device: str) -> list[str]:
    if device == "cpu":
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d for d in listed.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def available_cores() -> int:
    """The cores this process may run on: its affinity (a Slurm or taskset allocation),
    not the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def worker_environments(k: int, device: str) -> list[dict[str, str]]:
    threads = str(max(1, available_cores() // k))
    gpus = visible_gpus(device)
    envs = []
    for i in range(k):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        envs.append(env)
    return envs


def gpu_sharing(k: int, gpus: list[str]) -> str | None:
    """What to tell the user when workers share GPUs (more workers than GPUs)."""
    if not gpus or k <= len(gpus):
        return None
    shared = ", ".join(f"GPU {gpu}: workers {', '.join(str(i + 1) for i in range(k) if i % len(gpus) == g)}"
                       for g, gpu in enumerate(gpus))
    return (f"--workers {k} on {len(gpus)} GPU{'s' if len(gpus) > 1 else ''}: workers share "
            f"them ({shared}); each trial's memory must fit beside the others'")


@dataclass
class WorkersOutcome:
    """What the workers did: each study's result; the exit code when the results do not
    decide it (the parent was interrupted, a worker refused the input, no worker
    reported on a study); ``failed``: a worker exited 1 (a bug of ours, shown with its
    traceback, or a study that stopped or completed nothing)."""

    results: list[BackboneResult]
    code: int | None = None
    interrupted: bool = False
    failed: bool = False


def run_workers(loaded: LoadedConfig, overrides: list[str], k: int, console: LiveConsole,
                verbose: bool = False) -> WorkersOutcome:
    """Start K ``hposweep run`` workers and show what they do, until every one has ended.

    SIGINT and SIGTERM are the parent's to handle, also in a background job (where the
    shell has SIGINT ignored): each is forwarded to every worker (the workers run in
    their own process group, so a terminal's Ctrl-C reaches them once, through here), and
    the parent waits for them to leave the study resumable. A second signal, forwarded
    too, ends them at once.
    """
    cfg = loaded.config
    if not cfg.study.persist and not cfg.study.storage:
        raise UserError("--workers needs a shared study: set study.persist=true or "
                        "study.storage")
    if cfg.train.device.startswith("cuda:"):
        raise ConfigError(f"train.device: {cfg.train.device} with --workers {k}: each worker "
                          "trains on a GPU of its own (worker i gets GPU i mod the GPUs "
                          "visible); use train.device=cuda or auto")
    envs = worker_environments(k, cfg.train.device)
    sharing = gpu_sharing(k, visible_gpus(cfg.train.device))
    if sharing:
        console.warn(sharing)
    command = [sys.executable, "-m", "hposweep", "run", str(loaded.path), *overrides,
               "study.n_workers=1", *(["--verbose"] if verbose else [])]
    logs = OutputLayout.of(cfg.output_dir).worker_logs
    with reported_os_errors("cannot create the workers' log dir"):
        logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    received: list[int] = []
    view = WorkersView(console, k)

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        view.stopping()
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for i, env in enumerate(envs):
            if received:
                break
            procs.append(_start(command, env, logs / f"worker-{i + 1}.log"))
        console.info(f"started {len(procs)} workers (pids {', '.join(str(p.pid) for p in procs)}); "
                     f"what each prints (trainer output, library messages) goes to "
                     f"{logs}/worker-N.log")
        view.start()
        _follow(procs, view)
    finally:
        view.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    codes = [p.returncode for p in procs]
    for i, code in enumerate(codes):
        if code not in (0, 1, 2, 130, 143):
            console.warn(f"worker {i + 1} (pid {procs[i].pid}) ended with "
                         + (f"signal {-code}" if code < 0 else f"exit code {code}")
                         + f"; what it printed is in {logs}/worker-{i + 1}.log")
    results = view.final_results()
    if received:
        return WorkersOutcome(results, 143 if received[0] == signal.SIGTERM else 130, True)
    for code in (130, 143, 2):  # a worker interrupted on its own, or refusing the input
        if code in codes:
            return WorkersOutcome(results, code, interrupted=code != 2)
    if len(results) < len(cfg.backbones):  # every worker died before its study ended
        return WorkersOutcome(results, 1)
    for result in results:  # what one process prints at the end of each study
        console.sweep_finished(result)
    return WorkersOutcome(results, failed=1 in codes)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """One worker in its own process group: its events on a pipe, the rest to its log."""
    with reported_os_errors("cannot write the worker's log"), log.open("ab") as out:
        out.write(f"--- {datetime.now().isoformat(timespec='seconds')} "
                  f"{shlex.join(command)}\n".encode())
        out.flush()
        return subprocess.Popen(command, env={**env, WORKER_ENV: "1"}, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=out, start_new_session=True)


def _follow(procs: list[subprocess.Popen[bytes]], view: WorkersView) -> None:
    """Hand each worker's event lines to ``view`` until every worker has ended and its
    pipe is drained (a pipe a worker's own child still holds open is not waited for)."""
    pending = {p.stdout.fileno(): (i, p) for i, p in enumerate(procs) if p.stdout}
    partial = dict.fromkeys(pending, b"")
    with selectors.DefaultSelector() as selector:
        for fd in pending:
            selector.register(fd, selectors.EVENT_READ)
        while pending:
            ready = [key.fd for key, _ in selector.select(timeout=POLL_SECONDS)]
            for fd in ready:
                chunk = os.read(fd, 1 << 16)
                *lines, partial[fd] = (partial[fd] + chunk).split(b"\n")
                for line in lines:
                    view.handle(pending[fd][0], line.decode("utf-8", "replace"))
                if not chunk:  # the worker closed its end: it has ended
                    selector.unregister(fd)
                    del pending[fd]
            # Quiet for a while: a worker that has ended has said everything.
            for fd in [fd for fd, (_, proc) in pending.items()
                       if not ready and proc.poll() is not None]:
                selector.unregister(fd)
                del pending[fd]
    for i, proc in enumerate(procs):
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
        view.worker_ended(i, proc.returncode)
