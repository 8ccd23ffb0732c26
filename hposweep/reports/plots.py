"""A study's plots as one self-contained HTML page (plotly.js embedded once, works
offline), plus a PNG per plot when the optional ``kaleido`` is installed.

Several plots are ours rather than Optuna's: the optimization history also shows pruned
trials (at the last value they reported); the intermediate values of a k-fold study of
running estimates are each trial's estimate at each fold-epoch (labelled as such), those
of a study that reported raw epoch scores per epoch, the mean over the folds that reached
it (Optuna's plot would string a trial's folds together as one sawtooth: fold ``k``'s
epoch ``e`` is step ``k × epochs + e``); the fold scores
show each trial's score per fold against the best trial's (what a fold-level pruner
decides on); the two-objective Pareto front marks its knee and the members that kept a
checkpoint. Colour scales run from light (worse) to dark (better) whatever the goal.
Every figure takes the page's width: nothing scrolls sideways. A plot left out is said
(``warn``), with why. The figures of our own also go on the study's optuna-dashboard page
(:func:`dashboard_figures`, written by the sweep at its end).
"""

from __future__ import annotations

import re
import statistics
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hposweep.config.schema import SweepConfig
from hposweep.objectives.front import FrontMember
from hposweep.results import FOLD_VALUES_ATTR, REPORT_STEPS_ATTR
from hposweep.study.space import epochs_of

OPTUNA_PLOTS = ("param_importances", "parallel_coordinate", "slice")
FIGURE_HEIGHT = 480
STYLE = ("body{font-family:sans-serif;margin:1em auto;max-width:1600px;padding:0 1em}"
         ".plot{width:100%}")
# How each state's trials are drawn.
STATE_LINES = {"COMPLETE": "solid", "PRUNED": "dash", "FAIL": "dot"}
MIN_IMPORTANCE_TRIALS = 10  # fewer completed trials: importances are noise, not shown
MAX_LEGEND_TRIALS = 10  # more lines than this: coloured by value, not one colour each
# More lines than this: drawn as a few traces (one per colour band and line style, a gap
# between two trials) instead of a trace each: a page of 1,000 traces is heavy to draw,
# and the dashboard carries its figures on every poll.
MAX_TRACES = 50
COLOUR_BANDS = 10
LOG_SPREAD = 20  # an axis whose positive values span more than this factor is log scale
SCALE = "Blues"  # light = worse, dark = better


def write_plots(study: Any, cfg: SweepConfig, out: Path, warn: Callable[[str], None],
                front: list[FrontMember] | None = None) -> list[Path]:
    """Write ``{study}.html`` (and PNGs) into ``out``; returns the files written.
    ``front``: the sweep's Pareto front (its knee and kept members are marked)."""
    shown = figures(study, cfg, warn, front)
    if not shown:
        return []
    for _, figure in shown:  # the page's width, whatever Optuna sized it for
        figure.update_layout(width=None, height=FIGURE_HEIGHT, autosize=True)
    out.mkdir(parents=True, exist_ok=True)
    page = out / f"{study.study_name}.html"
    sections = [f"<h2>{title}</h2><div class='plot'>"
                + figure.to_html(full_html=False, include_plotlyjs=(i == 0),
                                 default_width="100%", config={"responsive": True}) + "</div>"
                for i, (title, figure) in enumerate(shown)]
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'>"
                    f"<meta name='viewport' content='width=device-width'><title>"
                    f"{study.study_name}</title><style>{STYLE}</style></head><body>"
                    f"<h1>{study.study_name}</h1>" + "".join(sections) + "</body></html>",
                    encoding="utf-8")
    return [page, *_pngs(study.study_name, shown, out, warn)]


def dashboard_figures(study: Any, cfg: SweepConfig, front: list[FrontMember] | None = None
                      ) -> dict[str, str]:
    """hposweep's own figures for the study's optuna-dashboard page (``id -> plotly JSON``,
    ids ``hposweep-<title>``), each titled: the Pareto front with its knee, the history
    with pruned trials, the intermediate values per epoch, the fold scores. Optuna's
    views (importances, parallel coordinate, slice) are left to the dashboard, which
    draws them itself, live. Leaving a figure out says nothing here: ``hposweep plot``
    and the sweep's MLflow plots say why. No plotly template: plotly.js's plain defaults,
    as the dashboard's own plots, and a third of the size (the page polls them)."""
    shown = figures(study, cfg, lambda _: None, front, optuna_views=False)
    for title, figure in shown:
        subtitle = figure.layout.title.text
        figure.update_layout(title=f"{title}<br><sup>{subtitle}</sup>" if subtitle else title,
                             template="none")
    return {"hposweep-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-"): figure.to_json()
            for title, figure in shown}


def figures(study: Any, cfg: SweepConfig, warn: Callable[[str], None],
            front: list[FrontMember] | None = None, optuna_views: bool = True
            ) -> list[tuple[str, Any]]:
    """``(title, plotly figure)`` of each plot the study has data for; ``optuna_views``:
    Optuna's own plots too (importances, parallel coordinate, slice, a Pareto front of
    more than two objectives)."""
    from hposweep.objectives.spec import objectives_of

    epochs = cfg.train.epochs
    n_folds = cfg.k_fold.n_splits if cfg.k_fold.enabled else 1
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name in STATE_LINES]
    objectives = objectives_of(cfg)
    maximize = objectives[0].goal == "maximize"
    name = study.study_name
    shown = []
    several = len(study.directions) > 1
    if several:
        warn(f"{name}: no optimization history plot (several objectives: the Pareto front "
             "shows every trial)")
        if len(objectives) == 2:
            shown.append(("pareto front", pareto_figure(study, objectives, front or [])))
        elif optuna_views:
            import optuna.visualization as vis

            shown.append(("pareto front", vis.plot_pareto_front(study)))
    elif any(t.state.name in ("COMPLETE", "PRUNED") for t in trials):
        shown.append(("optimization history", history_figure(trials, study.direction.name)))
    complete = sum(t.state.name == "COMPLETE" for t in trials)
    for plot in OPTUNA_PLOTS if optuna_views else ():
        title = plot.replace("_", " ")
        if plot == "param_importances" and complete < MIN_IMPORTANCE_TRIALS:
            warn(f"{name}: no {title} plot ({complete} completed trials; importances need "
                 f"{MIN_IMPORTANCE_TRIALS} to mean something)")
            continue
        try:
            import optuna.visualization as vis  # ~2 s: only for Optuna's own views

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # the sign of our own target
                figure = getattr(vis, f"plot_{plot}")(study, **_first_objective(study, cfg, plot))
        except (ValueError, RuntimeError) as exc:
            warn(f"{name}: no {title} plot ({exc})")
            continue
        if plot == "param_importances":
            title = f"param importances (from {complete} completed trials)"
        _better_is_darker(figure, plot, maximize, objectives[0].metric)
        shown.append((title, figure))
    steps = study.user_attrs.get(REPORT_STEPS_ATTR)
    by_fold = steps == "fold"
    if any(t.intermediate_values for t in trials) and steps == "estimate" and n_folds > 1:
        shown.append(("intermediate values: running estimates of the objective",
                      estimates_figure(trials, epochs, maximize)))
    elif any(t.intermediate_values for t in trials) and not by_fold:
        shown.append(("intermediate values",
                      intermediate_figure(trials, epochs, n_folds, maximize)))
    elif several and n_folds == 1:
        warn(f"{name}: no intermediate values plot (trials of several objectives report none)")
    if not several and any(len(fold_scores(t, by_fold)) > 1 for t in trials):
        shown.append(("fold scores", fold_scores_figure(trials, _best_number(study), by_fold)))
    return shown


def _best_number(study: Any) -> int | None:
    """The best feasible trial's number; None before one (none completed, or every one
    broke a constraint: Optuna raises then)."""
    try:
        return int(study.best_trial.number)
    except ValueError:
        return None


def _first_objective(study: Any, cfg: SweepConfig, plot: str) -> dict[str, Any]:
    """Optuna's single-target plots of a study of several objectives: the first objective
    (for importances signed so that lower is better, which is what they measure)."""
    if len(study.directions) == 1:
        return {}
    from hposweep.objectives.spec import objectives_of

    first = objectives_of(cfg)[0]
    sign = -1.0 if plot == "param_importances" and first.goal == "maximize" else 1.0
    return {"target": lambda t: sign * t.values[0], "target_name": first.metric}


def history_figure(trials: list[Any], direction: str) -> Any:
    """Each finished trial's value by trial number (a pruned trial: the last value it
    reported), and the best value so far among the completed ones."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for state, symbol in (("COMPLETE", "circle"), ("PRUNED", "x")):
        shown = [(t.number, _final_value(t)) for t in trials if t.state.name == state]
        shown = [(n, v) for n, v in shown if v is not None]
        if shown:
            figure.add_trace(go.Scatter(
                x=[n for n, _ in shown], y=[v for _, v in shown], mode="markers",
                name=state.lower(), marker={"symbol": symbol, "size": 9}))
    complete = sorted((t.number, t.value) for t in trials if t.state.name == "COMPLETE")
    if complete:
        pick = max if direction == "MAXIMIZE" else min
        best = [pick(v for _, v in complete[: i + 1]) for i in range(len(complete))]
        figure.add_trace(go.Scatter(x=[n for n, _ in complete], y=best, mode="lines",
                                    name="best so far", line={"shape": "hv"}))
    figure.update_layout(xaxis_title="trial", yaxis_title="objective value")
    return figure


def intermediate_figure(trials: list[Any], epochs: int, n_folds: int,
                        maximize: bool = True) -> Any:
    """One line per trial: by epoch, the mean of what its folds reported for that epoch
    (drawn as :func:`_trial_lines` draws)."""
    lines = [(t, fold_means(t.intermediate_values, epochs_of(t.params, epochs), n_folds))
             for t in trials]
    figure = _trial_lines(
        [(t, [e + 1 for e, _, _ in per_epoch], [m for _, m, _ in per_epoch],
          [k for _, _, k in per_epoch]) for t, per_epoch in lines if per_epoch],
        maximize, "epoch %{x}: %{y:.4f} (mean of %{customdata} folds)",
        "trial %{customdata[0]}, epoch %{x}: %{y:.4f} (mean of %{customdata[1]} folds)")
    figure.update_layout(xaxis={"title": "epoch", "dtick": 1},
                         yaxis_title="reported value, mean over folds" if n_folds > 1
                         else "reported value")
    return figure


def estimates_figure(trials: list[Any], epochs: int, maximize: bool = True) -> Any:
    """One line per trial: its running estimate of the objective (the mean of its
    finished folds' scores with the current fold's predicted score: what the pruner compared)
    at each fold-epoch it trained, fold ``k``'s epoch ``e`` at x = ``k × epochs + e + 1``.
    A completed trial's line ends at its value (drawn as :func:`_trial_lines` draws)."""
    lines = []
    for trial in trials:
        points, per_fold = sorted(trial.intermediate_values.items()), epochs_of(trial.params, epochs)
        if points:
            lines.append((trial, [s + 1 for s, _ in points], [v for _, v in points],
                          [[s // per_fold + 1, s % per_fold + 1] for s, _ in points]))
    figure = _trial_lines(
        lines, maximize, "fold %{customdata[0]} epoch %{customdata[1]}: %{y:.4f}",
        "trial %{customdata[0]}, fold %{customdata[1]} epoch %{customdata[2]}: %{y:.4f}")
    figure.update_layout(xaxis={"title": f"fold-epochs trained (fold k's epoch e: "
                                         f"k × {epochs} + e + 1)"},
                         yaxis_title="running estimate: mean of the finished folds and the "
                                     "current fold's predicted score")
    return figure


def _trial_lines(lines: list[tuple[Any, list[Any], list[float], list[Any]]], maximize: bool,
                 hover: str, joined_hover: str) -> Any:
    """A figure of one line per trial (its x, y and per-point hover data; dashed: pruned).
    Beyond ``MAX_LEGEND_TRIALS`` lines, each is coloured by its last value (darker is
    better) instead of a palette that repeats; beyond ``MAX_TRACES``, in ``COLOUR_BANDS``
    shades, the lines of a shade and style joined into one trace (its hover data, then
    ``joined_hover``, led by the trial's number)."""
    import plotly.graph_objects as go

    joined = len(lines) > MAX_TRACES
    colours = _by_value([y[-1] for _, _, y, _ in lines], maximize,
                        COLOUR_BANDS if joined else None) if (
        len(lines) > MAX_LEGEND_TRIALS) else None
    figure = go.Figure()
    if joined and colours:
        bands: dict[tuple[str, str], list[tuple[list[Any], list[Any], list[Any]]]] = {}
        for (trial, x, y, data), colour in zip(lines, colours, strict=True):
            bands.setdefault((colour, STATE_LINES[trial.state.name]), []).append((
                x, y, [[trial.number, *(d if isinstance(d, list) else [d])] for d in data]))
        for (colour, dash), band in bands.items():
            figure.add_trace(_joined(band, {"color": colour, "dash": dash}, joined_hover))
    for i, (trial, x, y, data) in enumerate([] if joined else lines):
        line: dict[str, Any] = {"dash": STATE_LINES[trial.state.name]}
        if colours:
            line["color"] = colours[i]
        figure.add_trace(go.Scatter(
            x=x, y=y, customdata=data, mode="lines+markers",
            name=f"trial {trial.number} ({trial.state.name.lower()})", line=line,
            hovertemplate=hover))
    if colours:
        figure.update_layout(showlegend=False, title=f"{len(lines)} trials, coloured by their "
                             "last value (darker is better); dashed: pruned")
    return figure


def fold_scores(trial: Any, by_fold: bool) -> list[float]:
    """A trial's score on each fold it ran: its reported values when the study's steps are
    folds (a fold-level pruner), else what the sweep recorded (k-fold)."""
    if by_fold:
        return [v for _, v in sorted(trial.intermediate_values.items())]
    return list(trial.user_attrs.get(FOLD_VALUES_ATTR) or [])


def fold_scores_figure(trials: list[Any], best: int | None, by_fold: bool) -> Any:
    """Per fold, every trial's score (grey; dashed: pruned) against the best trial's
    (dark): what a fold-level pruner compares. Beyond ``MAX_TRACES`` trials the grey lines
    of a style are one trace ("other trials")."""
    import plotly.graph_objects as go

    figure = go.Figure()
    scored = [(t, fold_scores(t, by_fold)) for t in trials]
    scored = [(t, scores) for t, scores in scored if scores]
    if len(scored) > MAX_TRACES:  # the others as one trace per line style
        styles: dict[str, list[tuple[list[Any], list[Any], list[Any]]]] = {}
        for trial, scores in scored:
            if trial.number != best:
                styles.setdefault(trial.state.name, []).append((
                    list(range(1, len(scores) + 1)), scores, [trial.number] * len(scores)))
        for state, lines in styles.items():
            figure.add_trace(_joined(lines, {"dash": STATE_LINES[state], "color": "#bdbdbd",
                                             "width": 1},
                                     "trial %{customdata}, fold %{x}: %{y:.4f}",
                                     f"other trials ({state.lower()})", opacity=0.7))
        scored = [(t, scores) for t, scores in scored if t.number == best]
    for trial, scores in sorted(scored, key=lambda ts: ts[0].number == best):  # best on top
        is_best = trial.number == best
        figure.add_trace(go.Scatter(
            x=list(range(1, len(scores) + 1)), y=scores, mode="lines+markers",
            name=f"trial {trial.number} ({trial.state.name.lower()})"
                 + (", the best" if is_best else ""),
            line={"dash": STATE_LINES[trial.state.name],
                  "color": "#08306b" if is_best else "#bdbdbd", "width": 4 if is_best else 1},
            opacity=1.0 if is_best else 0.7))
    figure.update_layout(xaxis={"title": "fold", "dtick": 1}, yaxis_title="fold score")
    return figure


def pareto_figure(study: Any, objectives: list[Any], front: list[FrontMember]) -> Any:
    """Two objectives: the feasible front (a line through its members), its knee (star)
    and the members that kept a checkpoint (ringed); dominated and infeasible trials in
    their own colours. An axis whose values span more than ``LOG_SPREAD`` is log scale."""
    import plotly.graph_objects as go

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    on_front = {m.number for m in front} or {t.number for t in study.best_trials}
    feasible = [t for t in complete if all(c <= 0 for c in t.constraints.values())]
    infeasible = {t.number for t in complete} - {t.number for t in feasible}
    groups = [("infeasible", [t for t in complete if t.number in infeasible],
               {"color": "#e6550d", "symbol": "x", "size": 8}),
              ("dominated", [t for t in feasible if t.number not in on_front],
               {"color": "#bdbdbd", "size": 8}),
              ("Pareto front", sorted((t for t in feasible if t.number in on_front),
                                      key=lambda t: t.values[0]),
               {"color": "#2171b5", "size": 10})]
    a, b = (o.metric for o in objectives)
    figure = go.Figure()
    for label, shown, marker in groups:
        if shown:
            figure.add_trace(_points(shown, label, marker, a, b, label == "Pareto front"))
    kept = [t for t in complete if any(m.number == t.number and m.checkpoint for m in front)]
    if kept:
        figure.add_trace(_points(kept, "kept a checkpoint", {
            "color": "rgba(0,0,0,0)", "size": 18, "line": {"color": "#08306b", "width": 2}},
            a, b))
    knee = [t for t in complete if any(m.number == t.number and m.knee for m in front)]
    if knee:
        figure.add_trace(_points(knee, "knee (the best trial)", {
            "color": "#08306b", "symbol": "star", "size": 16}, a, b))
    for axis, objective, index in (("xaxis", objectives[0], 0), ("yaxis", objectives[1], 1)):
        values = [t.values[index] for t in complete]
        log = bool(values) and min(values) > 0 and max(values) / min(values) > LOG_SPREAD
        figure.update_layout({axis: {
            "title": f"{objective.metric} ({objective.goal})" + (", log scale" if log else ""),
            "type": "log" if log else "linear"}})
    return figure


def _points(trials: list[Any], label: str, marker: dict[str, Any], a: str, b: str,
            joined: bool = False) -> Any:
    import plotly.graph_objects as go

    return go.Scatter(
        x=[t.values[0] for t in trials], y=[t.values[1] for t in trials],
        mode="lines+markers" if joined else "markers", name=label, marker=marker,
        line={"shape": "hv", "color": marker["color"]} if joined else None,
        customdata=[t.number for t in trials],
        hovertemplate=f"trial %{{customdata}}<br>{a} %{{x:.4g}}<br>{b} %{{y:.4g}}"
                      f"<extra>{label}</extra>")


def _better_is_darker(figure: Any, plot: str, maximize: bool, metric: str) -> None:
    """Optuna's colour scales, light to dark toward better: the parallel coordinate's lines
    by value; the slice's points by value too (Optuna colours them by trial number)."""
    from plotly.colors import sample_colorscale

    if plot == "parallel_coordinate":  # Optuna reverses the scale of any custom target
        for trace in figure.data:
            value = trace.y[0] if trace.mode == "lines" and trace.y else None
            if value is not None:  # one trial's line; y[0]: its value, from 0 to 1
                share = value if maximize else 1 - value
                trace.line.color = sample_colorscale(SCALE, [share])[0]
            elif trace.marker is not None and trace.marker.colorbar is not None:
                trace.marker.update(colorscale=SCALE, reversescale=not maximize)
    elif plot == "slice":
        for i, trace in enumerate(figure.data):
            if trace.marker is not None and trace.y is not None:
                trace.marker.update(color=list(trace.y), colorscale=SCALE,
                                    reversescale=not maximize, showscale=i == 0,
                                    colorbar={"title": {"text": metric}})


def _by_value(values: list[float], maximize: bool, bands: int | None = None) -> list[str]:
    """A colour per value from the scale's lighter quarter (never white) to its darkest;
    ``bands``: only that many colours (values rounded to the nearest)."""
    from plotly.colors import sample_colorscale

    low, high = min(values), max(values)
    spread = (high - low) or 1.0
    shares = [(v - low) / spread if maximize else (high - v) / spread for v in values]
    if bands:
        shares = [round(s * (bands - 1)) / (bands - 1) for s in shares]
    return sample_colorscale(SCALE, [0.25 + 0.75 * s for s in shares])


def _joined(lines: list[tuple[list[Any], list[Any], list[Any]]], line: dict[str, Any],
            hover: str, name: str | None = None, opacity: float = 1.0) -> Any:
    """Several trials' lines (x, y, per-point hover data) as one trace, a gap between two."""
    import plotly.graph_objects as go

    x: list[Any] = []
    y: list[Any] = []
    data: list[Any] = []
    for line_x, line_y, line_data in lines:
        x += [*line_x, None]
        y += [*line_y, None]
        data += [*line_data, None]
    return go.Scatter(x=x, y=y, customdata=data, mode="lines+markers", line=line,
                      name=name, showlegend=name is not None, opacity=opacity,
                      hovertemplate=hover + "<extra></extra>")


def fold_means(values: dict[int, float], epochs: int, n_folds: int
               ) -> list[tuple[int, float, int]]:
    """``(epoch, mean, folds)`` per epoch from a trial's reported steps: with k-fold,
    fold ``k``'s epoch ``e`` is step ``k × epochs + e``; without, a step is an epoch."""
    by_epoch: dict[int, list[float]] = {}
    for step, value in values.items():
        by_epoch.setdefault(step % epochs if n_folds > 1 else step, []).append(value)
    return [(e, statistics.fmean(v), len(v)) for e, v in sorted(by_epoch.items())]


def _final_value(trial: Any) -> float | None:
    if trial.state.name == "COMPLETE":
        return trial.value
    return trial.intermediate_values[max(trial.intermediate_values)] if (
        trial.intermediate_values) else None


def _pngs(prefix: str, figures: list[tuple[str, Any]], out: Path,
          warn: Callable[[str], None]) -> list[Path]:
    try:
        import kaleido  # noqa: F401  (optional: `pip install hposweep[png]`)
    except ImportError:
        return []
    written = []
    for title, figure in figures:
        path = out / f"{prefix}-{title.replace(' ', '_')}.png"
        try:
            figure.write_image(path, width=1200)
        except Exception as exc:  # kaleido 1.x needs a Chrome/Chromium it can find
            warn(f"PNG plots skipped ({type(exc).__name__}: {str(exc).splitlines()[0][:150]})")
            return written
        written.append(path)
    return written
