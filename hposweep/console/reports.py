"""What the terminal shows of a study as a whole: the trial table, the summary panel and
the Pareto front at the end of a sweep, and the reading commands (``status``, ``best``,
``compare``, ``run --dry-run``)."""

from __future__ import annotations

import statistics
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from hposweep.console.format import (
    fmt,
    fmt_duration,
    fmt_params,
    fmt_value,
    named,
    progress,
    text,
    trials,
)
from hposweep.console.live import LiveConsole
from hposweep.results import BackboneResult, TrialRow


class SweepConsole(LiveConsole):
    """The terminal's console: the live output, and the reports."""

    def sweep_finished(self, result: BackboneResult) -> None:
        self.stop_live()
        if self.mode == "json":
            return
        self.out.print(trial_table(f"{result.study_name}: trials", result.trials,
                                   result.objectives or [result.objective_metric],
                                   result.best_trial, self.out.width))
        self.out.print(summary_panel(result))

    def study_status(self, status: Any) -> None:
        """``hposweep status``: the trials, the best so far, what remains, what resumes."""
        if not status.exists:
            self.out.print(named(status.backbone, f": no study {status.study_name!r} yet "
                                                  f"({status.storage}); `hposweep run` starts it"))
            return
        self.out.print(trial_table(f"{status.study_name}: trials", status.trials,
                                   status.objectives or [status.objective_metric],
                                   status.best_trial, self.out.width))
        finished = (f"{status.finished}/{status.max_trials}" if status.stopped  # none to go
                    else progress(status.finished, status.max_trials))
        lines = [f"finished: {finished}",
                 best_line(status) if status.best_trial is not None
                 else "best trial: none completed yet",
                 *_budget_lines(status),
                 *([f"intermediate values: {status.intermediate_values}"]
                   if status.intermediate_values else []),
                 *final_lines(status), *registered_lines(status),
                 "resume pending:" if status.pending else "resume pending: nothing",
                 *[f"  {p}" for p in status.pending]]
        self.out.print(Panel(text(*lines), title=Text(status.backbone), title_align="left",
                             expand=False))

    def best(self, statuses: list[Any]) -> None:
        """``hposweep best``: one panel per backbone."""
        for status in statuses:
            if status.best_trial is None:
                self.out.print(named(status.backbone, ": no completed trial yet"))
                continue
            lines = [best_line(status),
                     f"params: {fmt_params(status.best_params)}",
                     f"checkpoint: {status.checkpoint or '(none on disk)'}",
                     f"MLflow parent run: {status.mlflow_parent_run_id or '-'}",
                     f"MLflow best trial run: {status.mlflow_best_run_id or '-'}",
                     *final_lines(status), *registered_lines(status)]
            self.out.print(Panel(text(*lines), title=Text(f"{status.backbone} ({status.study_name})"),
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
            table.add_row(Text(status.backbone), progress(status.finished, status.max_trials),
                          fmt(status.best_value), spread, fmt_duration(status.seconds))
        self.out.print(table)

    def dry_run(self, unresolved_yaml: str, statuses: list[Any]) -> None:
        """``hposweep run --dry-run``: the config and what a run would do, nothing more."""
        self.out.print(unresolved_yaml, markup=False, end="")
        for status in statuses:
            action = (f"resume study {status.study_name!r}: {status.finished}/"
                      f"{status.max_trials} finished, {status.remaining} to run"
                      if status.exists else
                      f"create study {status.study_name!r} ({status.storage}): "
                      f"{trials(status.max_trials)} to run")
            extra = f"; {len(status.pending)} to resume" if status.pending else ""
            if status.stopped:  # a budget or stop_when: the run would start no trial
                action, extra = (f"start no trial of study {status.study_name!r}: "
                                 f"{status.stopped}"), ""
            self.out.print(f"{status.backbone}: would {action}{extra}", markup=False)


def summary_panel(result: BackboneResult) -> Panel:
    """The end of a study's sweep: counts, the best trial, where its checkpoint is."""
    lines: list[str | Text] = [f"trials: {result.n_complete} complete, {result.n_pruned} pruned, "
             f"{result.n_failed} failed (study total {result.n_complete + result.n_pruned}"
             f"/{result.max_trials})"]
    if result.best_trial is None:
        lines.append(Text("no trial completed", style="red"))
    else:
        lines += [best_line(result),
                  f"params: {fmt_params(result.best_params)}",
                  f"checkpoint: {result.checkpoint or '(none on disk)'}", *final_lines(result),
                  *registered_lines(result)]
        k = len(result.best_fold_values)
        if result.refit_command and result.final is None and k:
            lines.append(f"the checkpoint is one fold's model (trained on {k - 1}/{k} of the "
                         f"data); to refit it on all of it: {result.refit_command}")
    lines.append(f"MLflow parent run: {result.mlflow_parent_run_id or '(not tracked)'}")
    if result.stopped != "max_trials":
        lines.append(f"stopped early: {result.stop_message}")
    return Panel(text(*lines), title=Text(result.backbone), title_align="left", expand=False)


def final_lines(study: Any) -> list[str]:
    """The final model (``final.refit``) beside the CV estimate: what it was trained on, its
    test metrics, where it is."""
    final = study.final
    if not final:
        return []
    metric = study.objective_metric
    test = final.get("test_metrics") or {}
    scores = (f"test {metric} = {fmt(test[metric])}, CV estimate {fmt(final['cv'].get(metric))}"
              if metric in test else "no test set: not scored")
    return [f"final model: trial {final['trial']} refit on {final['train_examples']} examples, "
            f"{final['epochs']} epoch{'s' * (final['epochs'] != 1)}; {scores}",
            f"final checkpoint: {final['checkpoint']}"]


REGISTERED_SOURCES = {"final": "the final model", "best": "the best trial's checkpoint"}


def registered_lines(study: Any) -> list[str]:
    """``mlflow.register_model``: the registered version that holds the study's model."""
    registered = study.registered
    if not registered:
        return []
    source = REGISTERED_SOURCES.get(registered["source"], registered["source"])
    return [f"registered: models:/{registered['name']}/{registered['version']} ({source})"]


def best_line(study: Any) -> str:
    """The best trial and its value (a run's result or a study's status); with several
    objectives, the knee of the Pareto front and its value in each."""
    knee = next((m for m in study.front if m.knee), None)
    if len(study.objectives) < 2 or knee is None:
        return f"best trial: {study.best_trial}  {study.objective_metric} = {fmt(study.best_value)}"
    values = ", ".join(f"{metric} = {fmt(knee.values[metric])}" for metric in study.objectives)
    return (f"knee of the Pareto front: trial {knee.number}  {values} "
            f"(front: {trials(len(study.front))})")


def _budget_lines(status: Any) -> list[str]:
    """``status``: each study budget used and left, and why the study stopped (if it did)."""
    lines = [f"budget {name}: {b['used']:.3g} of {b['budget']:g} h used, {b['left']:.3g} h left"
             for name, b in status.budget.items()]
    return lines + ([f"stopped: {status.stopped}"] if status.stopped else [])


def trial_table(title: str, rows: list[TrialRow], metrics: list[str], best: int | None,
                width: int = 120) -> RenderableType:
    """One row per trial, one column per objective (``metrics``) and per hyperparameter;
    the best marked with * (beside its first objective's value).

    Laid out for ``width``: no value is ever cut (a long header folds instead); notes
    (why a trial failed or was pruned, which trial it retries) get a column of their own
    when they fit beside the rest on one line, else a table of their own below, by trial
    number: a note is never wrapped into a narrow column.
    """
    names = list(dict.fromkeys(name for row in rows for name in row.params))
    notes = {row.number: _note(row) for row in rows if _note(row)}
    cells = [[str(row.number), row.state, fmt(row.value) + (" *" if row.number == best else ""),
              *(fmt(v) for v in (row.values or [None] * len(metrics))[1:len(metrics)]),
              *(fmt_value(row.params[n]) if n in row.params else "-" for n in names),
              "-" if row.duration_s is None else f"{row.duration_s:.1f}"] for row in rows]
    headers = ["#", "state", *metrics, *names, "seconds"]
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
    for row, values in zip(rows, cells, strict=True):
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
    """Why a trial is not like the others: a retry, queued parameters, a constraint it does
    not meet, why it failed or was pruned."""
    return "; ".join(filter(None, [
        f"retry of {row.retried_from}" if row.retried_from is not None else "", row.origin,
        f"infeasible: {', '.join(row.unmet)} not met" if row.unmet else "", row.reason]))


def front_table(status: Any) -> Table:
    """``hposweep best`` with a Pareto front: one row per member, the knee marked with *."""
    table = Table(title=Text(f"{status.study_name}: Pareto front (* knee = best trial)"),
                  title_justify="left")
    names = list(dict.fromkeys(name for m in status.front for name in m.params))
    for column in ("#", *status.objectives, *names, "checkpoint"):
        table.add_column(Text(column), no_wrap=True)
    for m in status.front:
        table.add_row(f"{m.number}{' *' if m.knee else ''}",
                      *(fmt(m.values[k]) for k in status.objectives),
                      *(Text(fmt_value(m.params[n])) if n in m.params else "-" for n in names),
                      "kept" if m.checkpoint else "-")
    return table
