"""A trial's resume dir: what lets a retried trial continue where its predecessor stopped.

``{backbone dir}/trial_{root}_{run_id}/resume/`` where ``root`` is the original trial
of a retry series, so every retry finds the same dir. It holds ``folds.json`` (the
metrics of finished folds, which are not retrained) and ``fold{k}/`` (the trainer's
state for the fold in progress). It is deleted when the trial finishes; it is never
a "best checkpoint" and does not outlive the sweep.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from pathlib import Path

from hposweep.checkpoints import CheckpointLayout, write_json_atomic

FOLDS_FILE = "folds.json"


class TrialResume:
    def __init__(self, layout: CheckpointLayout, root_number: int) -> None:
        self.dir = layout.trial_dir(root_number, None) / "resume"

    def fold_dir(self, index: int) -> Path:
        return self.dir / f"fold{index}"

    def completed_folds(self) -> dict[int, dict[str, float]]:
        path = self.dir / FOLDS_FILE
        if not path.is_file():
            return {}
        try:
            return {int(k): v for k, v in json.loads(path.read_text())["completed"].items()}
        except (ValueError, KeyError, TypeError):
            return {}

    def record_fold(self, index: int, metrics: dict[str, float]) -> None:
        """Remember a finished fold's metrics, then drop its now useless trainer state."""
        completed = self.completed_folds()
        completed[index] = metrics
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.dir / FOLDS_FILE, {"completed": completed})
        shutil.rmtree(self.fold_dir(index), ignore_errors=True)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.dir.parent.rmdir()  # the trial dir, unless it also holds a checkpoint


def resume_roots(layout: CheckpointLayout) -> list[int]:
    """The root trial numbers of this sweep's resume dirs on disk."""
    pattern = re.compile(rf"^trial_(\d+)_{re.escape(layout.run_id)}$")
    matches = (pattern.match(p.parent.name) for p in layout.root.glob("trial_*/resume"))
    return sorted(int(m.group(1)) for m in matches if m)
