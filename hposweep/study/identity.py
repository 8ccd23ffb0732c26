"""What makes a resumed study compatible: the settings recorded with a study (objective,
fine-tuning, data identity) that a config resuming it must match."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hposweep.config.schema import SweepConfig
from hposweep.errors import UserError
from hposweep.results import OBJECTIVE_ATTR

DATA_FILE_KEYS = ("data.train", "data.validation")
# What a fine-tuning setting missing from a study's settings means: the value studies made
# before it existed were made with (see fine_tuning_settings).
UNRECORDED_VALUES: dict[str, Any] = {
    "train.select_epoch": "last",
    "train.gradient_accumulation_steps": 1,
    "train.early_stopping": None,
    "data.group_by_length": False,
}


def objective_settings(cfg: SweepConfig) -> dict[str, Any]:
    """The settings that give a trial's value its meaning. Resuming with others would mix
    incomparable values in one study. (The search space, sampler, pruner, max_trials,
    devices and tracking may change between runs.)"""
    from hposweep.data.readers import SYNTHETIC_GENERATOR

    d, t = cfg.data, cfg.train
    kfold = cfg.k_fold.n_splits if cfg.k_fold.enabled else None
    return {
        "study.objective_metric": cfg.study.objective_metric,
        # Only set with several objectives or constraints: older studies keep resuming.
        "study.objectives": ([o.model_dump() for o in cfg.study.objectives]
                             if cfg.study.objectives else None),
        "study.constraints": list(cfg.study.constraints) or None,
        "k_fold.n_splits": kfold,
        "data.task": d.task,
        "data.train": file_digest(d.train) if d.train else None,
        "data.synthetic": ({**d.synthetic.model_dump(), "generator": SYNTHETIC_GENERATOR}
                           if d.synthetic else None),
        "data.validation": (file_digest(d.validation)
                            if d.validation and kfold is None else None),
        "data.validation_split": d.validation_split if kfold is None else None,
        "data.max_length": d.max_length,
        "model.from_config": dict(cfg.model.from_config) if cfg.model.from_config else None,
        "model.per_backbone": dict(cfg.model.per_backbone) or None,
        **{f"train.{k}": getattr(t, k) for k in (
            "trainer", "epochs", "seed", "learning_rate", "batch_size", "weight_decay",
            "warmup_ratio", "dropout", "max_grad_norm")},
        **fine_tuning_settings(cfg),
    }


def fine_tuning_settings(cfg: SweepConfig) -> dict[str, Any]:
    """The built-in trainer's fine-tuning settings that change a trial's value, each only
    where it differs from what studies made before these settings existed did: such a
    study resumes with them at those values. So ``select_epoch`` is recorded when it is
    ``best`` (older studies scored the last epoch: they resume with ``last``)."""
    d, t = cfg.data, cfg.train
    settings: dict[str, Any] = {}
    if t.select_epoch == "best":
        settings["train.select_epoch"] = "best"
    if t.gradient_accumulation_steps != 1:
        settings["train.gradient_accumulation_steps"] = t.gradient_accumulation_steps
    if t.early_stopping is not None:
        settings["train.early_stopping"] = t.early_stopping.model_dump()
    if d.group_by_length:
        settings["data.group_by_length"] = True
    if d.dataset is not None:
        from hposweep.data.hf_datasets import dataset_identity

        # The test split is the final stage's, never the search's: not the study's identity.
        settings["data.dataset"] = {**d.dataset.model_dump(exclude={"test_split"}),
                                    "path": dataset_identity(d.dataset)}
        settings["data.columns"] = d.columns.model_dump()
    return settings


def file_digest(path: str) -> str:
    """A data file's identity: its bytes, not its path (a moved checkout, or workers whose
    shared mount has another path, still hold the same study)."""
    import hashlib

    with open(path, "rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


def check_same_objective(cfg: SweepConfig, study: Any) -> None:
    import json

    current = json.loads(json.dumps(objective_settings(cfg), default=str))
    stored = study.user_attrs.get(OBJECTIVE_ATTR)
    if stored is not None and _upgrade_data_identity(stored, current):
        study.set_user_attr(OBJECTIVE_ATTR, stored)
    if stored is None:
        study.set_user_attr(OBJECTIVE_ATTR, current)
        return
    keys = [*current, *(k for k in stored if k not in current)]  # the order of the settings
    sampled = searched_defaults(cfg)
    changed = [k for k in keys if k not in sampled and _value(stored, k) != _value(current, k)]
    if changed:
        key = changed[0]
        raise UserError(
            f"study {study.study_name!r} was made with {_setting(key, _value(stored, key))}, "
            f"this config has {_setting(key, _value(current, key))}: its trials would not be "
            "comparable. Use another study.name or --fresh (which archives the old study)"
            + (f" ({len(changed) - 1} more setting(s) differ)" if len(changed) > 1 else ""))


def searched_defaults(cfg: SweepConfig) -> set[str]:
    """The built-in trainer's ``train.*`` defaults that no trial uses: the search space
    samples them for every trial."""
    from hposweep.config.schema import BUILTIN_HYPERPARAMETERS, BUILTIN_TRAINER

    if cfg.train.trainer != BUILTIN_TRAINER:
        return set()
    return {f"train.{name}" for name in cfg.search_space if name in BUILTIN_HYPERPARAMETERS}


def _value(settings: dict[str, Any], key: str) -> Any:
    return settings[key] if key in settings else UNRECORDED_VALUES.get(key)


def _setting(key: str, value: Any) -> str:
    """``key=value`` as a config writes it; k-fold off is recorded as no n_splits."""
    if key == "k_fold.n_splits" and value is None:
        return "k_fold.enabled=false"
    return f"{key}={_written(value)}"


def _written(value: Any) -> str:
    """A setting's value as a config writes it (``null``, ``true``, ``{patience: 2}``)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_written(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_written(v) for v in value) + "]"
    return str(value)


def _upgrade_data_identity(stored: dict[str, Any], current: dict[str, Any]) -> bool:
    """Studies made before data was identified by content stored its absolute path: the
    same path still names the same data, and its digest is stored from now on."""
    upgraded = False
    for key in DATA_FILE_KEYS:
        old = stored.get(key)
        if isinstance(old, str) and not old.startswith("sha256:") and Path(old).is_file():
            stored[key] = file_digest(old)
            upgraded = True
    return upgraded
