"""Optuna's visualizations of a study as one self-contained HTML page (plotly.js embedded
once, works offline), plus a PNG per plot when the optional ``kaleido`` is installed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

PLOTS = ("optimization_history", "param_importances", "parallel_coordinate", "slice",
         "intermediate_values")


def write_plots(study: Any, out: Path, warn: Callable[[str], None]) -> list[Path]:
    """Write ``{study}.html`` (and PNGs) into ``out``; returns the files written."""
    import optuna.visualization as vis

    figures = []
    front = ("pareto_front",) if len(study.directions) > 1 else ()  # 2 or 3 objectives
    for name in (*front, *PLOTS):
        try:
            figures.append((name, getattr(vis, f"plot_{name}")(study)))
        except (ValueError, RuntimeError) as exc:  # e.g. importances need 2+ completed trials
            warn(f"{study.study_name}: no {name.replace('_', ' ')} plot ({exc})")
    if not figures:
        return []
    out.mkdir(parents=True, exist_ok=True)
    page = out / f"{study.study_name}.html"
    sections = [f"<h2>{name.replace('_', ' ')}</h2>"
                + figure.to_html(full_html=False, include_plotlyjs=(i == 0))
                for i, (name, figure) in enumerate(figures)]
    page.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>"
                    f"{study.study_name}</title></head><body><h1>{study.study_name}</h1>"
                    + "".join(sections) + "</body></html>", encoding="utf-8")
    return [page, *_pngs(study.study_name, figures, out, warn)]


def _pngs(prefix: str, figures: list[tuple[str, Any]], out: Path,
          warn: Callable[[str], None]) -> list[Path]:
    try:
        import kaleido  # noqa: F401  (optional: `pip install hposweep[png]`)
    except ImportError:
        return []
    written = []
    for name, figure in figures:
        path = out / f"{prefix}-{name}.png"
        try:
            figure.write_image(path)
        except Exception as exc:  # kaleido 1.x needs a Chrome/Chromium it can find
            warn(f"PNG plots skipped ({type(exc).__name__}: {str(exc).splitlines()[0][:150]})")
            return written
        written.append(path)
    return written
