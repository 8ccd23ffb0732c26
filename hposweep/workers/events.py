"""A ``--workers`` worker's console: what one process would print, sent to the parent as
events instead, one JSON line each on the worker's stdout; the parent renders them
(:mod:`hposweep.workers.view`).

The worker's own output (what the trainer prints, library messages, anything on
stderr) goes to the worker's log file, which the parent names when it starts it.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import IO, Any

from rich.text import Text

from hposweep.console.live import LiveConsole, internal_error_message
from hposweep.results import BackboneResult, TrialRow

WORKER_ENV = "HPOSWEEP_WORKER"  # "1" in the environment of a --workers worker


def console_for_run(json_output: bool, verbose: bool) -> LiveConsole:
    """``hposweep run``'s console: events for the parent in a worker, else the terminal's."""
    if os.environ.get(WORKER_ENV) == "1":
        return EventConsole(verbose)
    from hposweep.console.reports import SweepConsole

    return SweepConsole("json" if json_output else None, verbose=verbose)


class EventConsole(LiveConsole):
    """Each sweep event as a JSON line ``{"event": <LiveConsole method>, ...its arguments}``
    on the stdout the parent reads; this process's stdout itself goes to its stderr (the
    log), so nothing the trainer prints can be taken for an event."""

    def __init__(self, verbose: bool) -> None:
        super().__init__("json", verbose=verbose)  # prints nothing itself
        sys.stdout.flush()
        self._events: IO[str] | None = os.fdopen(os.dup(sys.stdout.fileno()), "w",
                                                 encoding="utf-8")
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def _send(self, event: str, **args: Any) -> None:
        if self._events is None:
            return
        try:
            self._events.write(json.dumps({"event": event, **args}, default=str) + "\n")
            self._events.flush()
        except OSError:  # the parent is gone: the sweep goes on without a display
            self._events = None

    def warn(self, message: str) -> None:
        self._send("warn", message=message)

    def error(self, message: str, stop_live: bool = True) -> None:
        self._send("error", message=message)

    def info(self, message: str | Text) -> None:
        self._send("info", message=str(message))

    def internal_error(self, exc: BaseException) -> None:
        self._send("traceback", text="".join(traceback.format_exception(exc)))
        self.error(internal_error_message(exc))

    def debug_exception(self, exc: BaseException) -> None:
        if self.verbose:
            self._send("traceback", text="".join(traceback.format_exception(exc)))

    def sweep_started(self, backbone: str, study_name: str, resumed: bool, done: int,
                      total: int, maximize: bool = True, front: bool = False) -> None:
        self._send("sweep_started", backbone=backbone, study_name=study_name, resumed=resumed,
                   done=done, total=total, maximize=maximize, front=front)

    def trial_started(self, number: int, params: dict[str, Any],
                      retried_from: int | None = None) -> None:
        self._send("trial_started", number=number, params=params, retried_from=retried_from)

    def progress(self, number: int, fold: int | None, n_folds: int, epoch: int,
                 value: float) -> None:
        self._send("progress", number=number, fold=fold, n_folds=n_folds, epoch=epoch,
                   value=value)

    def trial_finished(self, number: int, state: str, value: float | None,
                       reason: str | None = None, kept: Path | None = None) -> None:
        self._send("trial_finished", number=number, state=state, value=value, reason=reason,
                   kept=None if kept is None else str(kept))

    def sweep_finished(self, result: BackboneResult) -> None:
        self._send("sweep_finished", result=result.to_json())

    def output_dir(self, output_dir: str) -> None:
        """Nothing: the parent says it once for all workers."""

    def interrupted(self, resume_command: str) -> None:
        """Nothing: the parent, which the user signalled, says it once for all workers."""

    def run_finished(self, results: list[BackboneResult], exit_code: int) -> None:
        """Nothing: the parent reports the outcome of all its workers together."""


def result_from_json(data: dict[str, Any]) -> BackboneResult:
    """A :class:`BackboneResult` back from its ``to_json`` form."""
    from hposweep.objectives.front import FrontMember

    return BackboneResult(**{**data, "trials": [TrialRow(**row) for row in data["trials"]],
                             "front": [FrontMember(**member) for member in data["front"]]})
