"""What the sweep prints while it runs: messages, the live progress line, each trial's
start and end, and the run's outcome.

Three modes: ``rich`` (a TTY: a live progress line), ``plain`` (not a TTY: one line
per event, good for CI logs) and ``json`` (only the final summary, as JSON, on stdout).
Warnings always go to stderr. The tables and panels at the end are the reports'
(:mod:`hposweep.console.reports`).
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType
from rich.constrain import Constrain
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from hposweep.console.format import fmt, fmt_params, make_console, named
from hposweep.results import BackboneResult

# The lines of a sweep's events, the same from one process and from a --workers parent.


def sweep_line(backbone: str, study_name: str, resumed: bool, done: int, total: int) -> Text:
    verb = "resuming" if resumed else "starting"
    return named(backbone, f": {verb} study {study_name!r} ({done}/{total} trials finished)")


def retry_note(retried_from: int | None) -> str:
    return f" (retry of trial {retried_from})" if retried_from is not None else ""


def started_line(number: int, params: dict[str, Any], retried_from: int | None) -> str:
    return f"trial {number} started{retry_note(retried_from)}: {fmt_params(params)}"


def place(fold: int | None, n_folds: int, epoch: int | None) -> str:
    """Where in a trial: ``fold 1/2 epoch 2`` (both counted from 1), ``epoch 2`` without
    k-fold, ``fold 1/2`` before the fold's first epoch ended."""
    parts = ([f"fold {fold + 1}/{n_folds}"] if fold is not None else []) + (
        [f"epoch {epoch + 1}"] if epoch is not None else [])
    return " ".join(parts)


def progress_line(number: int, fold: int | None, n_folds: int, epoch: int, value: float) -> str:
    return f"trial {number} {place(fold, n_folds, epoch)}: {value:.4f}"


def finished_line(number: int, state: str, value: float | None, reason: str | None,
                  kept: Path | str | None, front: bool = False) -> str:
    """A trial's end. ``front``: the study has several objectives, so a kept checkpoint
    means the trial joined the Pareto front, not that it is the best."""
    line = f"trial {number} {state}" + (f" {fmt(value)}" if value is not None else "")
    if reason:
        line += f": {reason}"
    if kept is not None:
        line += f" ({'joins the front' if front else 'new best'}, checkpoint kept: {kept})"
    return line


def output_dir_line(output_dir: str) -> str:
    """Where the sweep's files are: the resolved ``output_dir``, and what a relative one is
    relative to (the working directory, not the config file's)."""
    path = Path(output_dir)
    if path.is_absolute():
        return f"output_dir: {path}"
    return f"output_dir: {Path.cwd() / path} ({output_dir!r} is relative to the working directory)"


def internal_error_message(exc: BaseException) -> str:
    return (f"internal error in hposweep ({type(exc).__name__}: {exc}); this is a bug, "
            "not your config or your trainer: please report it with the traceback above. "
            "The study is saved: fix or upgrade and run the same command to resume")


def improves(value: float | None, best: float | None, maximize: bool) -> bool:
    return value is not None and (best is None or (value > best) == maximize)


ECHO_ROOM = 3  # columns a live line leaves free: the terminal echoes ``^C`` after it


class _FitProgress(Progress):
    """A progress display that never fills the terminal's last columns: the ``^C`` a
    terminal echoes after it would wrap onto a line the display does not know about,
    and stopping it would then leave the bar on screen with the next message glued on."""

    def __init__(self, *columns: Any, console: Console, **options: Any) -> None:
        self._screen = console  # set first: Progress renders once while it is set up
        super().__init__(*columns, console=console, **options)

    def get_renderable(self) -> RenderableType:
        return Constrain(super().get_renderable(), self._screen.width - ECHO_ROOM)


class LiveConsole:
    """The events a sweep reports as it runs, printed on this process's terminal or log.
    :class:`hposweep.console.reports.SweepConsole` adds the tables and panels;
    a ``--workers`` worker sends the same events to its parent instead."""

    def __init__(self, mode: str | None = None, verbose: bool = False) -> None:
        self.out = make_console()
        if not self.out.is_terminal:
            self.out = make_console(width=120)  # logs: wider than rich's default 80
        self.err = make_console(stderr=True)
        self.mode = mode or ("rich" if self.out.is_terminal else "plain")
        self.verbose = verbose
        self._progress: Any = None
        self._task: Any = None
        self._finished = 0
        self._best: float | None = None
        self._maximize = True
        self._front = False
        self._backbone = ""

    # ------------------------------------------------------------ messages
    # Messages are plain text: whatever they quote (paths, values, reasons) prints as written.

    def warn(self, message: str) -> None:
        self.err.print(Text.assemble(("warning:", "yellow"), " ", message), soft_wrap=True)

    def error(self, message: str, stop_live: bool = True) -> None:
        """An error line; the live display stops first (never glued onto a progress bar)
        unless the sweep goes on (``stop_live=False``: a --workers parent showing what a
        worker reported)."""
        if stop_live:
            self.stop_live()
        self.err.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True)

    def info(self, message: str | Text) -> None:
        """A line on stdout (none in json mode); a ``str`` prints literally."""
        if self.mode != "json":
            self.out.print(Text(message) if isinstance(message, str) else message,
                           soft_wrap=True)

    def internal_error(self, exc: BaseException) -> None:
        """A bug of hposweep's: the whole traceback, and who is to blame."""
        self.stop_live()
        self.err.print("".join(traceback.format_exception(exc)), markup=False, end="")
        self.error(internal_error_message(exc))

    def output_dir(self, output_dir: str) -> None:
        """Where this command reads and writes the sweep's files."""
        self.info(output_dir_line(output_dir))

    def interrupted(self, resume_command: str) -> None:
        """Ctrl-C / SIGTERM: the one message, with the command that resumes."""
        self.error(f"interrupted; the study is saved. Resume with: {resume_command}")

    def run_finished(self, results: list[BackboneResult], exit_code: int) -> None:
        """``hposweep run``'s outcome: the JSON summary (``--json``), why it stopped early."""
        if self.mode == "json":
            self.print_json(results, exit_code)
        for result in results:
            if result.stopped == "max_failures":
                self.error(f"{result.backbone}: {result.stop_message}")
        if any(r.stopped == "max_failures" for r in results):
            return
        if any(r.n_complete == 0 for r in results):
            self.error("no trial completed in at least one study")
        elif any(r.best_trial is None for r in results):  # every completed one infeasible
            self.error("no feasible trial in at least one study (none met study.constraints)")

    def print_json(self, results: list[BackboneResult], exit_code: int) -> None:
        payload = {"exit_code": exit_code, "backbones": [r.to_json() for r in results]}
        self.out.out(json.dumps(payload, indent=2, default=str), highlight=False)

    def show_live(self, live: Any) -> None:
        """Start ``live`` (anything with start/stop) as this console's live display."""
        self.stop_live()
        self._progress = live
        live.start()

    def refresh_live(self) -> None:
        """Redraw the live display now (it redraws a few times a second by itself)."""
        if self._progress is not None:
            self._progress.refresh()

    def stop_live(self) -> None:
        """End the live progress display before anything else is printed."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def debug_exception(self, exc: BaseException) -> None:
        if self.verbose:
            self.err.print("".join(traceback.format_exception(exc)), markup=False)

    # ------------------------------------------------------------ sweep events

    def sweep_started(self, backbone: str, study_name: str, resumed: bool, done: int,
                      total: int, maximize: bool = True, front: bool = False) -> None:
        """``front``: several objectives, whose trade-offs no one best value shows."""
        self._backbone, self._finished = backbone, done
        self._maximize, self._best, self._front = maximize, None, front
        self.info(sweep_line(backbone, study_name, resumed, done, total))
        if self.mode == "rich":
            self.show_live(_FitProgress(TextColumn("{task.description}", markup=False),
                                        BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                        console=self.out, transient=True))
            self._task = self._progress.add_task(backbone, total=total, completed=done)

    def trial_started(self, number: int, params: dict[str, Any],
                      retried_from: int | None = None) -> None:
        if self.mode == "plain":
            self.info(started_line(number, params, retried_from))
        self._describe(f"trial {number}{retry_note(retried_from)}")

    def progress(self, number: int, fold: int | None, n_folds: int, epoch: int,
                 value: float) -> None:
        self._describe(progress_line(number, fold, n_folds, epoch, value))

    def trial_finished(self, number: int, state: str, value: float | None,
                       reason: str | None = None, kept: Path | None = None) -> None:
        if state in ("COMPLETE", "PRUNED"):
            self._finished += 1
        if state == "COMPLETE" and not self._front and improves(value, self._best,
                                                                 self._maximize):
            self._best = value
        line = finished_line(number, state, value, reason, kept, self._front)
        if self.mode == "rich" and self._progress is not None:
            self._progress.console.print(Text(line), soft_wrap=True)
            self._progress.update(self._task, completed=self._finished)
        elif self.mode == "plain":
            self.info(line)

    def _describe(self, text: str) -> None:
        if self._progress is not None:
            best = f" | best {fmt(self._best)}" if self._best is not None else ""
            self._progress.update(self._task, description=f"{self._backbone} {text}{best}")

    def sweep_finished(self, result: BackboneResult) -> None:
        """A study's sweep has ended: the live display goes."""
        self.stop_live()
