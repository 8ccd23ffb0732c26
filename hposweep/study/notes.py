"""What a study carries for optuna-dashboard, in the form it stores and renders it: Markdown
notes on the study and on a few trials (study system attributes ``dashboard[:<trial
id>]:note_ver`` and ``...:note_str:<i>``) and plotly figures (``dashboard:plot_data:<id>:<i>``,
a figure's JSON), each body in chunks of 2,045 characters.

Written here rather than through ``optuna_dashboard.save_note`` /
``save_plotly_graph_object`` so that a sweep needs no optional package (workers rarely
have the dashboard installed; whoever looks at the study later may).

Every one of these attributes costs the dashboard's page: optuna-dashboard 0.21 looks up
each trial's note (and artifacts) by scanning all of the study's system attributes, so
their number, times the trials, is what the page pays. Hence notes on few trials only,
and figures written once per sweep end, chunk by chunk only where they changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CHUNK = 2045  # optuna-dashboard's longest system-attribute string
FIGURE_PREFIX = "dashboard:plot_data:"


def _keys(trial_id: int | None) -> tuple[str, str]:
    prefix = "dashboard" if trial_id is None else f"dashboard:{trial_id}"
    return f"{prefix}:note_ver", f"{prefix}:note_str:"


def write_trial_note(storage: Any, study_id: int, trial_id: int, body: str) -> None:
    """The note of a finished trial (its first and only version)."""
    _write(storage, study_id, trial_id, body, version=1, old_chunks=0)


def write_study_note(storage: Any, study_id: int, body: str) -> None:
    """Replace the study's note (a new version; call under the study lock)."""
    version_key, chunk_prefix = _keys(None)
    attrs = storage.get_study_system_attrs(study_id)
    old = sum(key.startswith(chunk_prefix) for key in attrs)
    _write(storage, study_id, None, body, int(attrs.get(version_key, 0)) + 1, old)


def has_note(system_attrs: dict[str, Any], trial_id: int | None) -> bool:
    """Whether the study's system attributes hold a note of the trial (None: the study)."""
    return _keys(trial_id)[0] in system_attrs


def write_figures(storage: Any, study_id: int, figures: Mapping[str, str]) -> int:
    """Each figure (id -> plotly JSON) where optuna-dashboard shows it, on the study's
    page; only the chunks that differ from what the study holds are written (a figure
    that has not changed costs nothing). Returns the number of writes. A figure of an
    earlier run that is not in ``figures`` stays as it was (blanking it would leave the
    dashboard an empty figure to parse). Call under the study lock."""
    attrs = storage.get_study_system_attrs(study_id)
    writes = 0
    for figure_id, body in figures.items():
        prefix = f"{FIGURE_PREFIX}{figure_id}:"
        old = sum(key.startswith(prefix) for key in attrs)
        for key, chunk in _chunked(prefix, body, old):
            if attrs.get(key) != chunk:
                storage.set_study_system_attr(study_id, key, chunk)
                writes += 1
    return writes


def _write(storage: Any, study_id: int, trial_id: int | None, body: str, version: int,
           old_chunks: int) -> None:
    version_key, chunk_prefix = _keys(trial_id)
    storage.set_study_system_attr(study_id, version_key, version)
    for key, chunk in _chunked(chunk_prefix, body, old_chunks):
        storage.set_study_system_attr(study_id, key, chunk)


def _chunked(prefix: str, body: str, old_chunks: int) -> list[tuple[str, str]]:
    """``body``'s chunks under ``prefix``; a shorter body blanks the chunks it no longer has
    (the dashboard joins as many chunks as there are keys)."""
    chunks = [body[i:i + CHUNK] for i in range(0, len(body), CHUNK)] or [""]
    return [(f"{prefix}{i}", chunk)
            for i, chunk in enumerate(chunks + [""] * (old_chunks - len(chunks)))]
