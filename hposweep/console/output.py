"""Everything the sweep prints: live progress, the trial table, the summary panel.

Three modes: ``rich`` (a TTY: a live progress line), ``plain`` (not a TTY: one line
per event, good for CI logs) and ``json`` (only the final summary, as JSON, on stdout).
Warnings always go to stderr.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import traceback
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.constrain import Constrain
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from hposweep.results import BackboneResult, TrialRow


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _progress(finished: int, max_trials: int) -> str:
    """``3/10 (7 to go)``; past max_trials (raised for a run, not in this config) plainly."""
    if finished >= max_trials:
        return f"{finished} (max_trials {max_trials}: nothing to run)"
    return f"{finished}/{max_trials} ({max_trials - finished} to go)"


def _trials(n: int) -> str:
    return f"{n} trial" if n == 1 else f"{n} trials"


def _fmt_duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _fmt_value(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _fmt_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt_value(v)}" for k, v in params.items())


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """``hposweep status ... | head``: the reader has what it wanted; exit 0 quietly
        (rich's default exits 1)."""
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0)


def _console(**options: Any) -> Console:
    """A rich Console that leaves text alone: no highlighting, no ``:emoji:`` codes."""
    return _Console(highlight=False, emoji=False, **options)


def _text(*lines: str | Text) -> Text:
    """Lines as one literal Text: user strings in them are never read as markup."""
    return Text("\n").join(Text(line) if isinstance(line, str) else line for line in lines)


def _named(backbone: str, rest: str) -> Text:
    """``backbone`` in bold, then ``rest``, both literal."""
    return Text.assemble((backbone, "bold"), rest)


# The lines of a sweep's events, the same from one process and from a --workers parent.

def sweep_line(backbone: str, study_name: str, resumed: bool, done: int, total: int) -> Text:
    verb = "resuming" if resumed else "starting"
    return _named(backbone, f": {verb} study {study_name!r} ({done}/{total} trials finished)")


def retry_note(retried_from: int | None) -> str:
    return f" (retry of trial {retried_from})" if retried_from is not None else ""


def started_line(number: int, params: dict[str, Any], retried_from: int | None) -> str:
    return f"trial {number} started{retry_note(retried_from)}: {_fmt_params(params)}"


def progress_line(number: int, fold: int | None, n_folds: int, epoch: int, value: float) -> str:
    where = f"trial {number}" + (f" fold {fold + 1}/{n_folds}" if fold is not None else "")
    return f"{where} epoch {epoch + 1}: {value:.4f}"


def finished_line(number: int, state: str, value: float | None, reason: str | None,
                  kept: Path | str | None) -> str:
    line = f"trial {number} {state}" + (f" {_fmt(value)}" if value is not None else "")
    if reason:
        line += f": {reason}"
    if kept is not None:
        line += f" (new best, checkpoint kept: {kept})"
    return line


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


class SweepConsole:
    def __init__(self, mode: str | None = None, verbose: bool = False) -> None:
        self.out = _console()
        if not self.out.is_terminal:
            self.out = _console(width=120)  # logs: wider than rich's default 80
        self.err = _console(stderr=True)
        self.mode = mode or ("rich" if self.out.is_terminal else "plain")
        self.verbose = verbose
        self._progress: Any = None
        self._task: Any = None
        self._finished = 0
        self._best: float | None = None
        self._maximize = True
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

    def show_live(self, live: Any) -> None:
        """Start ``live`` (anything with start/stop) as this console's live display."""
        self.stop_live()
        self._progress = live
        live.start()

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
                      total: int, maximize: bool = True) -> None:
        self._backbone, self._finished = backbone, done
        self._maximize, self._best = maximize, None
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
        if state == "COMPLETE" and improves(value, self._best, self._maximize):
            self._best = value
        line = finished_line(number, state, value, reason, kept)
        if self.mode == "rich" and self._progress is not None:
            self._progress.console.print(Text(line), soft_wrap=True)
            self._progress.update(self._task, completed=self._finished)
        elif self.mode == "plain":
            self.info(line)

    def _describe(self, text: str) -> None:
        if self._progress is not None:
            best = f" | best {_fmt(self._best)}" if self._best is not None else ""
            self._progress.update(self._task, description=f"{self._backbone} {text}{best}")

    def sweep_finished(self, result: BackboneResult) -> None:
        self.stop_live()
        if self.mode == "json":
            return
        self.out.print(trial_table(f"{result.study_name}: trials", result.trials,
                                   result.objectives or [result.objective_metric],
                                   result.best_trial, self.out.width))
        self.out.print(self._summary_panel(result))

    def study_status(self, status: Any) -> None:
        """``hposweep status``: the trials, the best so far, what remains, what resumes."""
        if not status.exists:
            self.out.print(_named(status.backbone, f": no study {status.study_name!r} yet "
                                                   f"({status.storage}); `hposweep run` starts it"))
            return
        self.out.print(trial_table(f"{status.study_name}: trials", status.trials,
                                   status.objectives or [status.objective_metric],
                                   status.best_trial, self.out.width))
        lines = [f"finished: {_progress(status.finished, status.max_trials)}",
                 f"best trial: {status.best_trial}  {status.objective_metric} = "
                 f"{_fmt(status.best_value)}" if status.best_trial is not None
                 else "best trial: none completed yet",
                 *_budget_lines(status),
                 "resume pending:" if status.pending else "resume pending: nothing",
                 *[f"  {p}" for p in status.pending]]
        self.out.print(Panel(_text(*lines), title=Text(status.backbone), title_align="left",
                             expand=False))

    def best(self, statuses: list[Any]) -> None:
        """``hposweep best``: one panel per backbone."""
        for status in statuses:
            if status.best_trial is None:
                self.out.print(_named(status.backbone, ": no completed trial yet"))
                continue
            lines = [f"best trial: {status.best_trial}  {status.objective_metric} = "
                     f"{_fmt(status.best_value)}",
                     f"params: {_fmt_params(status.best_params)}",
                     f"checkpoint: {status.checkpoint or '(none on disk)'}",
                     f"MLflow parent run: {status.mlflow_parent_run_id or '-'}",
                     f"MLflow best trial run: {status.mlflow_best_run_id or '-'}"]
            self.out.print(Panel(_text(*lines), title=Text(f"{status.backbone} ({status.study_name})"),
                                 title_align="left", expand=False))
            if status.front:
                self.out.print(front_table(status))

    def compare(self, statuses: list[Any]) -> None:
        """``hposweep compare``: backbones side by side."""
        metric = statuses[0].objective_metric if statuses else "value"
        table = Table(title="backbones", title_justify="left")
        for column in ("backbone", "trials", f"best {metric}", "best trial: mean ± std over folds",
                       "time"):
            table.add_column(Text(column))
        for status in statuses:
            folds = status.best_fold_values
            spread = (f"{statistics.fmean(folds):.4f} ± {statistics.pstdev(folds):.4f} "
                      f"({len(folds)} folds)" if folds else "-")
            table.add_row(Text(status.backbone), _progress(status.finished, status.max_trials),
                          _fmt(status.best_value), spread, _fmt_duration(status.seconds))
        self.out.print(table)

    def dry_run(self, unresolved_yaml: str, statuses: list[Any]) -> None:
        """``hposweep run --dry-run``: the config and what a run would do, nothing more."""
        self.out.print(unresolved_yaml, markup=False, end="")
        for status in statuses:
            action = (f"resume study {status.study_name!r}: {status.finished}/"
                      f"{status.max_trials} finished, {status.remaining} to run"
                      if status.exists else
                      f"create study {status.study_name!r} ({status.storage}): "
                      f"{_trials(status.max_trials)} to run")
            extra = f"; {len(status.pending)} to resume" if status.pending else ""
            if status.stopped:  # a budget or stop_when: the run would start no trial
                action, extra = (f"start no trial of study {status.study_name!r}: "
                                 f"{status.stopped}"), ""
            self.out.print(f"{status.backbone}: would {action}{extra}", markup=False)

    def _summary_panel(self, result: BackboneResult) -> Panel:
        lines: list[str | Text] = [f"trials: {result.n_complete} complete, {result.n_pruned} pruned, "
                 f"{result.n_failed} failed (study total {result.n_complete + result.n_pruned}"
                 f"/{result.max_trials})"]
        if result.best_trial is None:
            lines.append(Text("no trial completed", style="red"))
        else:
            lines += [f"best trial: {result.best_trial}  "
                      f"{result.objective_metric} = {_fmt(result.best_value)}",
                      f"params: {_fmt_params(result.best_params)}",
                      f"checkpoint: {result.checkpoint or '(none on disk)'}"]
        lines.append(f"MLflow parent run: {result.mlflow_parent_run_id or '(not tracked)'}")
        if result.stopped != "max_trials":
            lines.append(f"stopped early: {result.stop_message}")
        return Panel(_text(*lines), title=Text(result.backbone), title_align="left", expand=False)

    def print_json(self, results: list[BackboneResult], exit_code: int) -> None:
        payload = {"exit_code": exit_code, "backbones": [r.to_json() for r in results]}
        self.out.out(json.dumps(payload, indent=2, default=str), highlight=False)


def _budget_lines(status: Any) -> list[str]:
    """``status``: each study budget used and left, and why the study stopped (if it did)."""
    lines = [f"budget {name}: {b['used']:.3g} of {b['budget']:g} h used, {b['left']:.3g} h left"
             for name, b in status.budget.items()]
    return lines + ([f"stopped: {status.stopped}"] if status.stopped else [])


def trial_table(title: str, trials: list[TrialRow], metrics: list[str], best: int | None,
                width: int = 120) -> RenderableType:
    """One row per trial, one column per objective (``metrics``) and per hyperparameter;
    the best marked with * (beside its first objective's value).

    Laid out for ``width``: no value is ever cut (a long header folds instead); notes
    (why a trial failed or was pruned, which trial it retries) get a column of their own
    when they fit beside the rest on one line, else a table of their own below, by trial
    number: a note is never wrapped into a narrow column.
    """
    names = list(dict.fromkeys(name for row in trials for name in row.params))
    notes = {row.number: _note(row) for row in trials if _note(row)}
    cells = [[str(row.number), row.state, _fmt(row.value) + (" *" if row.number == best else ""),
              *(_fmt(v) for v in (row.values or [None] * len(metrics))[1:len(metrics)]),
              *(_fmt_value(row.params[n]) if n in row.params else "-" for n in names),
              "-" if row.duration_s is None else f"{row.duration_s:.1f}"] for row in trials]
    headers = ["#", "state", *metrics, *names, "s"]
    value_widths = [max([len(c[i]) for c in cells], default=1) for i in range(len(headers))]
    natural = sum(max(w, len(h)) + 3 for w, h in zip(value_widths, headers, strict=True)) + 1
    longest_note = max(map(len, notes.values()), default=0)
    beside = bool(notes) and natural + longest_note + 3 <= width
    table = Table(title=Text(title), title_justify="left")
    widths: list[int | None] = [None] * len(headers)  # each column as wide as it needs
    if natural > width:
        widths = list(_squeezed(headers, value_widths, width))
    for header, value_width, column_width in zip(headers, value_widths, widths, strict=True):
        table.add_column(Text(header, overflow="fold"), width=column_width,
                         min_width=value_width, overflow="fold")
    if beside:
        table.add_column("note", no_wrap=True)
    for row, values in zip(trials, cells, strict=True):
        table.add_row(*map(Text, values), *([Text(notes.get(row.number, ""))] if beside else []))
    if not notes or beside:
        return table
    below = Table(title=Text("notes"), title_justify="left")
    below.add_column("#", no_wrap=True)
    below.add_column("note", overflow="fold")
    for number, note in notes.items():
        below.add_row(str(number), Text(note))
    return Group(table, below)


def _squeezed(headers: list[str], value_widths: list[int], width: int) -> list[int]:
    """Column widths for a table wider than ``width``: every column keeps its values'
    width; the room left first lets each cut header fold onto two lines at most, then
    widens as many columns as it can to their whole header, the least cut first."""
    widths = list(value_widths)
    room = width - (sum(widths) + 3 * len(widths) + 1)
    for goal in ([-(-len(h) // 2) for h in headers], [len(h) for h in headers]):
        for need, i in sorted((goal[i] - w, i) for i, w in enumerate(widths) if goal[i] > w):
            if need <= room:
                widths[i] += need
                room -= need
    return widths


def _note(row: TrialRow) -> str:
    return " ".join(filter(None, [
        f"retry of {row.retried_from}" if row.retried_from is not None else "", row.reason or ""]))


def front_table(status: Any) -> Table:
    """``hposweep best`` with a Pareto front: one row per member, the knee marked with *."""
    table = Table(title=Text(f"{status.study_name}: Pareto front (* knee = best trial)"),
                  title_justify="left")
    names = list(dict.fromkeys(name for m in status.front for name in m.params))
    for column in ("#", *status.objectives, *names, "checkpoint"):
        table.add_column(Text(column), no_wrap=True)
    for m in status.front:
        table.add_row(f"{m.number}{' *' if m.knee else ''}",
                      *(_fmt(m.values[k]) for k in status.objectives),
                      *(Text(_fmt_value(m.params[n])) if n in m.params else "-" for n in names),
                      "kept" if m.checkpoint else "-")
    return table
