"""MLflow Model Registry (``mlflow.register_model``): the model a sweep ships, logged with
MLflow's ``transformers`` flavour (a pipeline ``mlflow.pyfunc.load_model`` predicts with)
and registered as a new version of the named model, once per checkpoint.

A checkpoint's identity is the SHA-256 of its ``hposweep.json``: written once, last, when
the checkpoint is sealed (a new refit or a new best trial writes a new one). A version
tagged with that identity already registered means there is nothing to do: a re-run that
changed nothing adds no version, and a run killed after registering does not register
twice. (A run killed between logging the model and registering it leaves a logged model
that no version points at; the next run logs and registers it again.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hposweep.checkpoints.layout import METADATA_FILE
from hposweep.config.schema import SweepConfig

# data.task -> the transformers pipeline task the model is logged as
PIPELINE_TASKS = {"token-classification": "token-classification",
                  "sequence-classification": "text-classification"}
IDENTITY_TAG = "hposweep.checkpoint_sha256"
IDENTITY_KEY = "checkpoint_sha256"  # in the study's record of the version
TRACKING_URI_VARIABLE = "MLFLOW_TRACKING_URI"
MODEL_NAME = "model"  # the logged model's name (MLflow 3: a LoggedModel of the parent run)
# MLflow 3.17 infers pip requirements by importing the model's every optional dependency
# (torchvision among them): it fails without them, so the requirements are given.
REQUIREMENTS = ("mlflow", "transformers", "torch")
# Without it a token-classification pyfunc's predict raises IndexError on a sentence
# whose every token is "O" (MLflow 3.17): every token keeps its label instead.
TOKEN_MODEL_CONFIG = {"ignore_labels": []}


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    new: bool  # False: a version of this checkpoint was registered before; nothing was logged
    source: str  # what the version is: "final" (a final model) or "best" (a trial's checkpoint)
    identity: str  # the checkpoint's (:func:`checkpoint_identity`)

    def record(self) -> dict[str, str]:
        """What the study keeps of it (``REGISTERED_ATTR``)."""
        return {"name": self.name, "version": self.version, "source": self.source,
                IDENTITY_KEY: self.identity}


def checkpoint_identity(checkpoint: Path) -> str:
    return _identity((checkpoint / METADATA_FILE).read_bytes())


def _identity(metadata: bytes) -> str:
    return hashlib.sha256(metadata).hexdigest()


def version_tags(cfg: SweepConfig, checkpoint: Path, study_name: str) -> dict[str, str]:
    """What the version says about itself, from the checkpoint's ``hposweep.json``: the
    study, the trial, the CV estimate and (a final model scored on a test set)
    ``test_<metric>``."""
    raw = (checkpoint / METADATA_FILE).read_bytes()  # read once: its content and its identity
    meta = json.loads(raw)
    tags = {"hposweep.study_name": study_name, "hposweep.backbone": str(meta["backbone"]),
            "hposweep.trial_number": str(meta["trial_number"]),
            "hposweep.source": "final" if meta.get("refit") else "best",
            IDENTITY_TAG: _identity(raw)}
    if meta.get("objective_value") is not None:
        tags[f"cv_{cfg.study.objective_metric}"] = str(meta["objective_value"])
    tags.update({f"test_{k}": str(v) for k, v in (meta.get("test_metrics") or {}).items()})
    return tags


def find_version(client: Any, name: str, identity: str) -> Any:
    """The version of ``name`` already registered for this checkpoint, or None."""
    found = client.search_model_versions(
        f"name = '{name}' and tags.`{IDENTITY_TAG}` = '{identity}'", max_results=1)
    return found[0] if found else None


def register_checkpoint(client: Any, uri: str, cfg: SweepConfig, checkpoint: Path, *,
                        study_name: str, parent_run_id: str) -> Registered:
    """Log ``checkpoint`` (``save_pretrained`` + tokenizer + ``hposweep.json``) as a
    ``transformers`` model of the parent run and register it as a new version of
    ``mlflow.register_model``, unless a version of it exists."""
    name = cfg.mlflow.register_model
    assert name is not None, "called only with mlflow.register_model set"
    if not (checkpoint / "config.json").is_file():
        raise ValueError(f"{checkpoint} is not a transformers model (no config.json): a custom "
                         "trainer registers only what it saves with save_pretrained, with its "
                         "tokenizer")
    tags = version_tags(cfg, checkpoint, study_name)
    source, identity = tags["hposweep.source"], tags[IDENTITY_TAG]
    existing = find_version(client, name, identity)
    if existing is not None:
        return Registered(name, str(existing.version), False, source, identity)
    import mlflow

    pipeline = load_pipeline(cfg, checkpoint)
    model_config = TOKEN_MODEL_CONFIG if cfg.data.task == "token-classification" else None
    # The flavour warns that the checkpoint has no hub model card and no licence: ours never do.
    logging.getLogger("mlflow.transformers").setLevel(logging.ERROR)
    with process_tracking_uri(uri):
        info = mlflow.transformers.log_model(
            pipeline, name=MODEL_NAME, task=PIPELINE_TASKS[cfg.data.task],
            pip_requirements=pinned_requirements(), model_config=model_config,
            run_id=parent_run_id)
        ensure_registered_model(client, name)
        version = client.create_model_version(name, source=info.model_uri, run_id=parent_run_id,
                                              tags=tags, model_id=info.model_id)
    return Registered(name, str(version.version), True, source, identity)


@contextlib.contextmanager
def process_tracking_uri(uri: str) -> Iterator[None]:
    """``uri`` as MLflow's process-wide tracking URI for a while: MLflow resolves a new
    version's ``models:/`` source through it, not through the client's. MLflow's own
    ``_use_tracking_uri`` also sets ``MLFLOW_TRACKING_URI`` and, leaving, unsets it when
    no URI was set in code: the variable the user set is put back as it was, so that
    what runs next in this process (the next backbone's sweep) tracks where it did."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    saved = os.environ.get(TRACKING_URI_VARIABLE)
    try:
        with _use_tracking_uri(uri):
            yield
    finally:
        if saved is None:
            os.environ.pop(TRACKING_URI_VARIABLE, None)
        else:
            os.environ[TRACKING_URI_VARIABLE] = saved


def load_pipeline(cfg: SweepConfig, checkpoint: Path) -> Any:
    """The checkpoint as the transformers pipeline it is logged as (on the CPU)."""
    import transformers

    return transformers.pipeline(PIPELINE_TASKS[cfg.data.task], model=str(checkpoint),
                                 tokenizer=str(checkpoint), device="cpu",
                                 trust_remote_code=cfg.model.trust_remote_code)


def pinned_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in REQUIREMENTS]


def ensure_registered_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
