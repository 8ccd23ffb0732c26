"""``hposweep.json``: what a checkpoint is, written last into it (its presence marks the
checkpoint complete), read by the manager, the tracker and ``export``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hposweep.checkpoints.files import write_json_atomic
from hposweep.checkpoints.layout import METADATA_FILE


@dataclass(frozen=True)
class CheckpointMetadata:
    trial_number: int
    params: dict[str, Any]
    metrics: dict[str, float]
    fold: int | None  # the fold whose model this is (k-fold); None for a single training
    objective_value: float | None  # the trial's objective (the mean over folds with k-fold)
    backbone: str
    study_name: str
    objective_metric: str
    device: str
    created_at: str
    git_commit: str | None = None
    versions: dict[str, str] = field(default_factory=dict)  # hposweep, torch, transformers, ...
    # What the model was trained and validated on (n_folds: with k-fold only); None in
    # checkpoints made before these were recorded.
    n_folds: int | None = None
    train_examples: int | None = None
    validation_examples: int | None = None
    # The final stage's model (final.refit): trained once on all the training data with
    # trial ``trial_number``'s hyperparameters for ``epochs`` epochs, scored on the test set.
    refit: bool = False
    epochs: int | None = None
    test_examples: int | None = None
    test_sha256: str | None = None  # the test data's content hash (not the study's identity)
    test_metrics: dict[str, float] = field(default_factory=dict)

    def write(self, checkpoint: Path) -> None:
        write_json_atomic(checkpoint / METADATA_FILE, asdict(self))

    @classmethod
    def read(cls, checkpoint: Path) -> CheckpointMetadata | None:
        """The checkpoint's metadata, or None when it is missing or not ours."""
        try:
            raw = json.loads((checkpoint / METADATA_FILE).read_text(encoding="utf-8"))
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in raw.items() if k in known})
        except (OSError, ValueError, TypeError, AttributeError):
            return None


def trial_number_of(checkpoint: Path) -> int | None:
    """The trial a checkpoint dir says it holds (None: not sealed, or not ours)."""
    meta = CheckpointMetadata.read(checkpoint)
    try:
        return None if meta is None else int(meta.trial_number)
    except (TypeError, ValueError):
        return None
