"""What a ``--workers`` parent shows, from its workers' events (:mod:`hposweep.workers.events`):
the same as one process shows, per worker.

On a terminal: a live display with each study's progress bar and best value, and a line
per worker (its trial, fold, epoch and last value); each finished trial's row printed
above it as it ends. In logs: one line per trial start and end, prefixed with the worker.
At the end the parent prints each study's trial table and summary, from the last worker
to finish it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from rich.console import Group, RenderableType
from rich.constrain import Constrain
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from hposweep.console.live import (
    ECHO_ROOM,
    LiveConsole,
    finished_line,
    improves,
    progress_line,
    retry_note,
    started_line,
    sweep_line,
)
from hposweep.results import BackboneResult
from hposweep.workers.events import result_from_json


@dataclass
class _Study:
    done: int
    total: int
    maximize: bool
    front: bool  # several objectives: no one best value
    best: float | None = None


class WorkersView:
    """Renders the events of ``k`` workers on ``console`` (rich, plain or json mode)."""

    def __init__(self, console: LiveConsole, k: int) -> None:
        self.console = console
        self.doing = ["starting"] * k  # what each worker is doing
        self.ended = [False] * k
        self.signalled = False  # a signal was forwarded: the workers are stopping
        self.backbone_of = [""] * k
        self.studies: dict[str, _Study] = {}
        self.results: dict[str, BackboneResult] = {}
        self.stopped: dict[str, BackboneResult] = {}  # a worker that hit study.max_failures

    def start(self) -> None:
        if self.console.mode == "rich":
            self.console.show_live(Live(self, console=self.console.out, transient=True,
                                        refresh_per_second=4))

    def stop(self) -> None:
        self.console.stop_live()

    def final_results(self) -> list[BackboneResult]:
        """Per backbone, the last finished worker's result (it saw the study complete);
        a worker stopped by ``study.max_failures`` makes it say so."""
        return [dataclasses.replace(result, stopped=self.stopped[b].stopped,
                                    stop_message=self.stopped[b].stop_message)
                if b in self.stopped else result for b, result in self.results.items()]

    # ------------------------------------------------------------ events

    def handle(self, worker: int, line: str) -> None:
        """One JSON line from ``worker`` (0-based); a line that is no event is shown as is."""
        try:
            event = json.loads(line)
            handler = getattr(self, f"_on_{event.pop('event')}")
        except (ValueError, KeyError, AttributeError, TypeError):
            self.console.info(f"worker {worker + 1}: {line.rstrip()}")
            return
        handler(worker, **event)

    def _say(self, worker: int, message: str | Text) -> None:
        self.console.info(Text.assemble(f"worker {worker + 1}: ", message))

    def _on_info(self, worker: int, message: str) -> None:
        self._say(worker, message)

    def _on_warn(self, worker: int, message: str) -> None:
        self.console.warn(f"worker {worker + 1}: {message}")

    def _on_error(self, worker: int, message: str) -> None:
        self.console.error(f"worker {worker + 1}: {message}", stop_live=False)

    def _on_traceback(self, worker: int, text: str) -> None:
        self.console.err.print(f"worker {worker + 1}: {text}", markup=False, end="")

    def _on_sweep_started(self, worker: int, backbone: str, study_name: str, resumed: bool,
                          done: int, total: int, maximize: bool, front: bool) -> None:
        self.backbone_of[worker] = backbone
        self.doing[worker] = f"{backbone}: waiting for a trial"
        if backbone not in self.studies:  # the first worker to set the study up says it
            self.studies[backbone] = _Study(done, total, maximize, front)
            self.console.info(sweep_line(backbone, study_name, resumed, done, total))

    def _on_trial_started(self, worker: int, number: int, params: dict[str, Any],
                          retried_from: int | None) -> None:
        self.doing[worker] = f"{self.backbone_of[worker]} trial {number}{retry_note(retried_from)}"
        if self.console.mode == "plain":
            self._say(worker, started_line(number, params, retried_from))

    def _on_progress(self, worker: int, number: int, fold: int | None, n_folds: int,
                     epoch: int, value: float) -> None:
        self.doing[worker] = (f"{self.backbone_of[worker]} "
                              f"{progress_line(number, fold, n_folds, epoch, value)}")

    def _on_trial_finished(self, worker: int, number: int, state: str, value: float | None,
                           reason: str | None, kept: str | None) -> None:
        study = self.studies.get(self.backbone_of[worker])
        if study is not None:
            study.done += state in ("COMPLETE", "PRUNED")
            if state == "COMPLETE" and not study.front and improves(value, study.best,
                                                                    study.maximize):
                study.best = value
        self.doing[worker] = f"{self.backbone_of[worker]}: waiting for a trial"
        self._say(worker, finished_line(number, state, value, reason, kept,
                                        study is not None and study.front))

    def _on_sweep_finished(self, worker: int, result: dict[str, Any]) -> None:
        finished = result_from_json(result)
        self.results[finished.backbone] = finished
        if finished.stopped == "max_failures":
            self.stopped[finished.backbone] = finished
        self.doing[worker] = f"{finished.backbone}: done"

    def worker_ended(self, worker: int, code: int) -> None:
        self.ended[worker] = True
        self.doing[worker] = "ended" if code == 0 else f"ended (exit code {code})"

    def stopping(self) -> None:
        """Ctrl-C or SIGTERM reached the workers: each still running is shown stopping
        (its trial marked failed, the study left resumable) until it has ended; the
        display says so at once, not at its next refresh."""
        self.signalled = True
        self.console.refresh_live()

    def _shown(self, worker: int) -> str:
        doing = self.doing[worker]
        if not self.signalled or self.ended[worker] or doing.endswith(": done"):
            return doing
        if doing == "starting" or doing.endswith(": waiting for a trial"):
            return "stopping"
        return f"stopping: {doing}"

    # ------------------------------------------------------------ the live display

    def __rich__(self) -> RenderableType:
        bars = Table.grid(padding=(0, 1))
        for backbone, study in self.studies.items():
            best = f"best {study.best:.4f}" if study.best is not None else ""
            bars.add_row(Text(backbone, style="bold"),
                         ProgressBar(total=study.total, completed=min(study.done, study.total),
                                     width=30), Text(f"{study.done}/{study.total}"), Text(best))
        lines = [Text(f"  worker {i + 1}: {self._shown(i)}", no_wrap=True, overflow="ellipsis")
                 for i in range(len(self.doing))]
        shown = [bars, *lines] if self.studies else lines
        return Constrain(Group(*shown), self.console.out.width - ECHO_ROOM)
