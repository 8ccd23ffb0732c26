"""A trial's resume dir: what lets a retried trial continue where its predecessor stopped.

``{backbone dir}/trial_{root}_{run_id}/resume/`` where ``root`` is the original trial
of a retry series, so every retry finds the same dir. It holds ``folds.json`` (the
metrics of finished folds, which are not retrained) and ``fold{k}/`` (the trainer's
state for the fold in progress). It is deleted when the trial finishes; it is never
a "best checkpoint" and does not outlive the sweep. A trial dir or resume dir that is a
symlink is not ours: nothing is read, written or deleted through it.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hposweep.checkpoints.files import first_link, is_real_dir, remove_tree, write_json_atomic
from hposweep.checkpoints.layout import CheckpointLayout

FOLDS_FILE = "folds.json"


class TrialResume:
    def __init__(self, layout: CheckpointLayout, root_number: int,
                 warn: Callable[[str], None]) -> None:
        self.root = layout.root
        self.dir = layout.resume_dir(root_number)
        self.warn = warn
        link = first_link(self.dir, self.root)
        self.usable = link is None
        if link is not None:
            warn(f"trial {root_number}: {link.relative_to(self.root)} is a symlink, not a dir "
                 "this sweep made; the trial does not save or resume its state there")

    def fold_dir(self, index: int) -> Path | None:
        """Where fold ``index`` keeps its trainer state; None when the dir is not usable."""
        return self.dir / f"fold{index}" if self.usable else None

    def completed_folds(self) -> dict[int, dict[str, float]]:
        return dict(self._recorded[0])

    def completed_curves(self) -> dict[int, dict[int, float]]:
        """Each finished fold's objective per epoch, as it reported them (a running
        estimate predicts a fold's end from them); {} for folds recorded without."""
        return {k: dict(curve) for k, curve in self._recorded[1].items()}

    @functools.cached_property
    def _recorded(self) -> tuple[dict[int, dict[str, float]], dict[int, dict[int, float]]]:
        """``folds.json``, read once (then kept up to date by :meth:`record_fold`): the
        finished folds' metrics and curves."""
        path = self.dir / FOLDS_FILE
        try:
            found = json.loads(path.read_text()) if self.usable and path.is_file() else {}
        except ValueError:
            found = {}
        if not isinstance(found, dict):
            found = {}
        completed = {int(k): v for k, v in _mapping(found.get("completed")).items()}
        try:
            curves = {int(k): {int(e): float(v) for e, v in curve.items()}
                      for k, curve in _mapping(found.get("curves")).items()}
        except (ValueError, TypeError, AttributeError):
            curves = {}
        return completed, curves

    def record_fold(self, index: int, metrics: dict[str, float],
                    curve: dict[int, float] | None = None) -> None:
        """Remember a finished fold's metrics (and its objective per epoch, ``curve``),
        then drop its now useless trainer state. A failed write (a full disk) is a
        warning: the trial goes on, and only a retry after a crash trains the fold again."""
        if not self.usable:
            return
        completed, curves = self._recorded
        completed[index] = metrics
        curves[index] = dict(curve or {})
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.dir / FOLDS_FILE, {"completed": completed, "curves": curves})
        except OSError as exc:
            del completed[index], curves[index]  # what is kept is what the file holds
            self.warn(f"{self.dir}: fold {index} not recorded as finished ({exc}); a retry "
                      "after a crash trains it again")
        remove_tree(self.dir / f"fold{index}", self.root, self.warn)

    def remove(self) -> None:
        if not self.usable:
            return
        remove_tree(self.dir, self.root, self.warn)
        with contextlib.suppress(OSError):
            self.dir.parent.rmdir()  # the trial dir, unless it also holds a checkpoint


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def resume_roots(layout: CheckpointLayout) -> list[int]:
    """The root trial numbers of this sweep's resume dirs on disk (real dirs, no links)."""
    roots = []
    for trial_dir in layout.root.glob("trial_*"):
        parsed = layout.parse_trial_dir(trial_dir.name)
        if parsed is not None and parsed[1] is None and is_real_dir(trial_dir / "resume",
                                                                    layout.root):
            roots.append(parsed[0])
    return sorted(roots)
