"""Markdown notes on a study and its trials, in the form optuna-dashboard stores and renders
them (study system attributes ``dashboard[:<trial id>]:note_ver`` and
``...:note_str:<i>``, the body in chunks of 2,045 characters).

Written here rather than through ``optuna_dashboard.save_note`` so that a sweep needs no
optional package (workers rarely have the dashboard installed; whoever looks at the
study later may), and so that a trial's note costs two writes and no read: a trial's
note is written once, when the trial has finished.
"""

from __future__ import annotations

from typing import Any

CHUNK = 2045  # optuna-dashboard's longest system-attribute string


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


def count_trial_notes(system_attrs: dict[str, Any]) -> int:
    return sum(key.startswith("dashboard:") and key.endswith(":note_ver") and key.count(":") == 2
               for key in system_attrs)


def _write(storage: Any, study_id: int, trial_id: int | None, body: str, version: int,
           old_chunks: int) -> None:
    version_key, chunk_prefix = _keys(trial_id)
    chunks = [body[i:i + CHUNK] for i in range(0, len(body), CHUNK)] or [""]
    storage.set_study_system_attr(study_id, version_key, version)
    # A shorter body blanks the chunks it no longer has (the dashboard counts them).
    for i, chunk in enumerate(chunks + [""] * (old_chunks - len(chunks))):
        storage.set_study_system_attr(study_id, f"{chunk_prefix}{i}", chunk)
