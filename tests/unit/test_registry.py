"""``mlflow.register_model`` without a server: what a version is tagged with, and what the
tracker does with a checkpoint it cannot register (the registering itself, on a real
``mlflow server``: tests/e2e/test_registry.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hposweep.checkpoints.layout import METADATA_FILE
from hposweep.config.loading import load
from hposweep.tracking.registry import (
    IDENTITY_TAG,
    checkpoint_identity,
    process_tracking_uri,
    version_tags,
)
from hposweep.tracking.tracker import SweepTracker
from tests.conftest import SMOKE
from tests.helpers import mlflow_client


def sealed(directory: Path, **metadata: object) -> Path:
    directory.mkdir(parents=True)
    (directory / METADATA_FILE).write_text(json.dumps(
        {"trial_number": 3, "backbone": "tiny-bert", "objective_value": 0.75,
         "created_at": "2026-01-01T00:00:00", **metadata}))
    return directory


def test_a_version_is_tagged_with_its_study_trial_scores_and_identity(tmp_path: Path) -> None:
    cfg = load(SMOKE, ["mlflow.register_model=ner"]).config
    best = sealed(tmp_path / "best")
    assert version_tags(cfg, best, "smoke_tiny-bert") == {
        "hposweep.study_name": "smoke_tiny-bert", "hposweep.backbone": "tiny-bert",
        "hposweep.trial_number": "3", "hposweep.source": "best", "cv_macro-f1-span": "0.75",
        IDENTITY_TAG: checkpoint_identity(best)}
    refit = sealed(tmp_path / "final", refit=True, test_metrics={"macro-f1-span": 0.5, "loss": 1.25})
    tags = version_tags(cfg, refit, "smoke_tiny-bert")
    assert tags["hposweep.source"] == "final"
    assert (tags["test_macro-f1-span"], tags["test_loss"]) == ("0.5", "1.25")
    assert tags[IDENTITY_TAG] != checkpoint_identity(best), "another hposweep.json, another model"


def test_a_checkpoint_that_is_not_a_transformers_model_is_one_warning(
        workdir: Path, tmp_path: Path) -> None:
    """A custom trainer's checkpoint without ``config.json``: one warning, no model made."""
    warnings: list[str] = []
    cfg = load(SMOKE, ["mlflow.register_model=ner"]).config
    tracker = SweepTracker(cfg, "study", "tiny", warnings.append)
    assert tracker.start_sweep("sweep-1", None, "{}", resumed=False)
    custom = sealed(tmp_path / "custom")
    (custom / "weights.json").write_text("{}")
    assert tracker.register_model(custom) is None
    (warning,) = warnings
    assert warning.startswith("MLflow failed to register a version of 'ner' (ValueError: ")
    assert "is not a transformers model (no config.json)" in warning
    assert mlflow_client(workdir / "outputs").search_registered_models() == []


def test_no_checkpoint_on_disk_is_one_warning_and_no_name_registers_nothing(
        workdir: Path) -> None:
    warnings: list[str] = []
    for overrides in (["mlflow.register_model=ner"], []):
        tracker = SweepTracker(load(SMOKE, overrides).config, "study", "tiny", warnings.append)
        assert tracker.start_sweep("sweep-1", None, "{}", resumed=False)
        assert tracker.register_model(None) is None
    assert warnings == ["no checkpoint of the best trial is on disk; no version of 'ner' is "
                        "registered"]


def test_registering_leaves_the_users_tracking_uri_variable_as_it_was(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The next backbone's sweep in this process reads ``MLFLOW_TRACKING_URI`` again:
    registering (which sets MLflow's process-wide URI for a while) must not unset it."""
    import mlflow

    users = f"sqlite:///{tmp_path / 'users.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", users)
    with process_tracking_uri(f"sqlite:///{tmp_path / 'ours.db'}"):
        assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_path / 'ours.db'}"
    assert os.environ["MLFLOW_TRACKING_URI"] == users
    assert mlflow.get_tracking_uri() == users
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with process_tracking_uri(f"sqlite:///{tmp_path / 'ours.db'}"):
        pass
    assert "MLFLOW_TRACKING_URI" not in os.environ
