"""Where every file of a sweep lives: :class:`OutputLayout` for the whole ``output_dir``,
:class:`CheckpointLayout` for one sweep's trial dirs. No other module builds these paths.

Under ``output_dir``::

    mlflow.db, mlartifacts/                       the default MLflow store
    hpo/{study_name}/study.db, .study.lock        the Optuna study (default SQLite) and its lock
    hpo/{backbone}/best.json, .best.lock          which checkpoints are kept, and its lock
    hpo/{backbone}/trial_{n}_{run_id}[_fold{k}]/checkpoint/   a kept checkpoint
    hpo/{backbone}/trial_{n}_{run_id}/resume/     what a retried trial continues from
    hpo/{backbone}/final_{run_id}/checkpoint/     the final model (final.refit): all the data
    hpo/{backbone}/final_{run_id}/resume/         what a killed final stage continues from
    hpo/workers/                                  ``run --workers`` logs

Nothing a file says is resolved: a kept checkpoint is a real dir named exactly
``trial_{n}_{run_id}[_fold{k}]/checkpoint`` (no symlink from the root down)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from hposweep.checkpoints.files import STAGING_PREFIX
from hposweep.errors import UserError

BEST_FILE = "best.json"
LOCK_FILE = ".best.lock"  # the best-checkpoint decision of every process sharing a backbone dir
STUDY_LOCK_FILE = ".study.lock"  # see hposweep.study.open.study_lock
STUDY_DB_FILE = "study.db"
METADATA_FILE = "hposweep.json"


@dataclass(frozen=True)
class OutputLayout:
    """The paths under ``output_dir`` (relative to the working directory unless absolute)."""

    output_dir: Path

    @classmethod
    def of(cls, output_dir: str | Path) -> OutputLayout:
        return cls(Path(output_dir))

    @property
    def hpo_dir(self) -> Path:
        return self.output_dir / "hpo"

    def study_dir(self, study_name: str) -> Path:
        return self.hpo_dir / study_name

    def study_db(self, study_name: str) -> Path:
        return self.study_dir(study_name) / STUDY_DB_FILE

    def study_lock(self, study_name: str) -> Path:
        return self.study_dir(study_name) / STUDY_LOCK_FILE

    def backbone_dir(self, backbone_slug: str) -> Path:
        return self.hpo_dir / backbone_slug

    def checkpoints(self, backbone_slug: str, run_id: str) -> CheckpointLayout:
        return CheckpointLayout(self.backbone_dir(backbone_slug), run_id)

    @property
    def worker_logs(self) -> Path:
        return self.hpo_dir / "workers"

    @property
    def mlflow_db(self) -> Path:
        return self.output_dir / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.output_dir / "mlartifacts"


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
        return self._staging(self.trial_dir(number, fold).name)

    def _staging(self, name: str) -> Path:
        """A new staging dir for the dir ``name`` (its prefix marks it a leftover if found)."""
        return self.root / f"{STAGING_PREFIX}{name}-{uuid.uuid4().hex[:8]}"

    @property
    def final_dir(self) -> Path:
        """The final stage's dir: its checkpoint and, while it trains, its resume state."""
        return self.root / f"final_{self.run_id}"

    @property
    def final_checkpoint(self) -> Path:
        return self.final_dir / "checkpoint"

    @property
    def final_resume_dir(self) -> Path:
        return self.final_dir / "resume"

    def final_staging_dir(self) -> Path:
        return self._staging(self.final_dir.name)

    def final_staging_dirs(self) -> list[Path]:
        """Staging dirs of final stages that did not finish (or a replaced final model)."""
        return sorted(self.root.glob(f"{STAGING_PREFIX}{self.final_dir.name}-*"))

    def resume_dir(self, root_number: int) -> Path:
        """Where trial ``root_number`` and its retries keep what lets a retry continue."""
        return self.trial_dir(root_number, None) / "resume"

    @property
    def best_file(self) -> Path:
        return self.root / BEST_FILE

    @property
    def lock_file(self) -> Path:
        return self.root / LOCK_FILE
