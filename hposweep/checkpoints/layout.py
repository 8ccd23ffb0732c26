"""Trial checkpoints on disk: the directory layout, atomic saves, and the best-only rule.

Order of operations when a trial becomes the best (the one the seeds learned the hard
way): the checkpoint is written completely into a ``.tmp-*`` dir and renamed into its
final name -> ``best.json`` is replaced atomically -> only then are checkpoints that
fell out of the best ``keep_best`` deleted. A crash at any instant leaves at least one
complete best checkpoint and never a half-written one under a final name.

Nothing a file says is resolved: a kept checkpoint is a real dir named exactly
``trial_{n}_{run_id}[_fold{k}]/checkpoint`` (no symlink from the root down), anything
else in ``best.json`` is ignored with a warning, and every deletion goes through
:func:`remove_tree`, which never follows a link."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from hposweep.checkpoints.files import STAGING_PREFIX
from hposweep.errors import UserError

BEST_FILE = "best.json"


LOCK_FILE = ".best.lock"


METADATA_FILE = "hposweep.json"


@dataclass(frozen=True)
class CheckpointLayout:
    """``{root}/trial_{n}_{run_id}[_fold{k}]/checkpoint/`` with root = ``{output_dir}/hpo/{backbone}``."""

    root: Path
    run_id: str

    def __post_init__(self) -> None:
        # The run id comes from the study storage: never let it steer a path elsewhere.
        if not re.fullmatch(r"[0-9a-f]{8}", self.run_id):
            raise UserError(f"the study's {self.run_id!r} is not a sweep id (8 hex digits); "
                            "the study storage was edited by hand?")

    def parse_checkpoint(self, relative: str) -> tuple[int, int | None] | None:
        """(trial, fold) of a checkpoint named relative to the root, if the string is
        exactly ``trial_{n}_{run_id}[_fold{k}]/checkpoint``; no path is resolved."""
        match = re.fullmatch(rf"(trial_\d+_{self.run_id}(?:_fold\d+)?)/checkpoint", relative)
        return self.parse_trial_dir(match.group(1)) if match else None

    def parse_trial_dir(self, name: str) -> tuple[int, int | None] | None:
        """(trial, fold) of a trial dir's name in this layout, else None."""
        match = re.fullmatch(rf"trial_(\d+)_{self.run_id}(?:_fold(\d+))?", name)
        if match is None:
            return None
        return int(match.group(1)), int(match.group(2)) if match.group(2) else None

    def trial_dir(self, number: int, fold: int | None) -> Path:
        suffix = f"_fold{fold}" if fold is not None else ""
        return self.root / f"trial_{number}_{self.run_id}{suffix}"

    def checkpoint_dir(self, number: int, fold: int | None) -> Path:
        return self.trial_dir(number, fold) / "checkpoint"

    def staging_dir(self, number: int, fold: int | None) -> Path:
        name = self.trial_dir(number, fold).name
        return self.root / f"{STAGING_PREFIX}{name}-{uuid.uuid4().hex[:8]}"

    @property
    def best_file(self) -> Path:
        return self.root / BEST_FILE
