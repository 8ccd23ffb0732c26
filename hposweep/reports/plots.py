"""A study's plots as one self-contained HTML page (plotly.js embedded once, works
offline), plus a PNG per plot when the optional ``kaleido`` is installed.

Two plots are ours rather than Optuna's: the optimization history also shows pruned
trials (at the last value they reported), and the intermediate values are per epoch,
the mean over the folds that reached it (Optuna's plot would string a trial's folds
together as one sawtooth: fold ``k``'s epoch ``e`` is step ``k × epochs + e``); a study
of a fold-level pruner (wilcoxon) reports fold scores instead, plotted by fold. Every
figure takes the page's width: nothing scrolls sideways.
"""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hposweep.config.schema import SweepConfig
from hposweep.results import REPORT_STEPS_ATTR

OPTUNA_PLOTS = ("param_importances", "parallel_coordinate", "slice")
FIGURE_HEIGHT = 480
STYLE = ("body{font-family:sans-serif;margin:1em auto;max-width:1600px;padding:0 1em}"
         ".plot{width:100%}")
# How each state's trials are drawn.
STATE_LINES = {"COMPLETE": "solid", "PRUNED": "dash", "FAIL": "dot"}


def write_plots(study: Any, cfg: SweepConfig, out: Path, warn: Callable[[str], None]) -> list[Path]:
    """Write ``{study}.html`` (and PNGs) into ``out``; returns the files written."""
    import optuna.visualization as vis

    epochs = cfg.train.epochs
    n_folds = cfg.k_fold.n_splits if cfg.k_fold.enabled else 1
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name in STATE_LINES]
    figures = []
    if len(study.directions) == 1 and any(t.state.name in ("COMPLETE", "PRUNED") for t in trials):
        figures.append(("optimization history", history_figure(trials, study.direction.name)))
    several = len(study.directions) > 1
    if several:
        figures.append(("pareto front", vis.plot_pareto_front(study)))  # 2 or 3 objectives
    for name in OPTUNA_PLOTS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # the sign of our own target
                figure = getattr(vis, f"plot_{name}")(study, **_first_objective(study, cfg, name))
            figures.append((name.replace("_", " "), figure))
        except (ValueError, RuntimeError) as exc:  # e.g. importances need 2+ completed trials
            warn(f"{study.study_name}: no {name.replace('_', ' ')} plot ({exc})")
    if any(t.intermediate_values for t in trials):
        if study.user_attrs.get(REPORT_STEPS_ATTR) == "fold":
            figures.append(("fold scores", fold_scores_figure(trials)))
        else:
            figures.append(("intermediate values", intermediate_figure(trials, epochs, n_folds)))
    if not figures:
        return []
    for _, figure in figures:  # the page's width, whatever Optuna sized it for
        figure.update_layout(width=None, height=FIGURE_HEIGHT, autosize=True)
    out.mkdir(parents=True, exist_ok=True)
    page = out / f"{study.study_name}.html"
    sections = [f"<h2>{title}</h2><div class='plot'>"
                + figure.to_html(full_html=False, include_plotlyjs=(i == 0),
                                 default_width="100%", config={"responsive": True}) + "</div>"
                for i, (title, figure) in enumerate(figures)]
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'>"
                    f"<meta name='viewport' content='width=device-width'><title>"
                    f"{study.study_name}</title><style>{STYLE}</style></head><body>"
                    f"<h1>{study.study_name}</h1>" + "".join(sections) + "</body></html>",
                    encoding="utf-8")
    return [page, *_pngs(study.study_name, figures, out, warn)]


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


def intermediate_figure(trials: list[Any], epochs: int, n_folds: int) -> Any:
    """One line per trial: by epoch, the mean of what its folds reported for that epoch."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for trial in trials:
        per_epoch = fold_means(trial.intermediate_values, _epochs_of(trial, epochs), n_folds)
        if not per_epoch:
            continue
        figure.add_trace(go.Scatter(
            x=[e + 1 for e, _, _ in per_epoch], y=[m for _, m, _ in per_epoch],
            customdata=[k for _, _, k in per_epoch], mode="lines+markers",
            name=f"trial {trial.number} ({trial.state.name.lower()})",
            line={"dash": STATE_LINES[trial.state.name]},
            hovertemplate="epoch %{x}: %{y:.4f} (mean of %{customdata} folds)"))
    figure.update_layout(xaxis={"title": "epoch", "dtick": 1},
                         yaxis_title="reported value, mean over folds" if n_folds > 1
                         else "reported value")
    return figure


def fold_scores_figure(trials: list[Any]) -> Any:
    """A fold-level pruner's study (its step is a fold index): each trial's fold scores."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for trial in trials:
        folds = sorted(trial.intermediate_values.items())
        if folds:
            figure.add_trace(go.Scatter(
                x=[k + 1 for k, _ in folds], y=[v for _, v in folds], mode="lines+markers",
                name=f"trial {trial.number} ({trial.state.name.lower()})",
                line={"dash": STATE_LINES[trial.state.name]}))
    figure.update_layout(xaxis={"title": "fold", "dtick": 1}, yaxis_title="fold score")
    return figure


def fold_means(values: dict[int, float], epochs: int, n_folds: int
               ) -> list[tuple[int, float, int]]:
    """``(epoch, mean, folds)`` per epoch from a trial's reported steps: with k-fold,
    fold ``k``'s epoch ``e`` is step ``k × epochs + e``; without, a step is an epoch."""
    by_epoch: dict[int, list[float]] = {}
    for step, value in values.items():
        by_epoch.setdefault(step % epochs if n_folds > 1 else step, []).append(value)
    return [(e, statistics.fmean(v), len(v)) for e, v in sorted(by_epoch.items())]


def _epochs_of(trial: Any, default: int) -> int:
    return int(trial.params.get("epochs", default))


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
