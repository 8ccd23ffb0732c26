"""Rules a config must meet that read several sections of it, or the file system: checked
after the schema (:mod:`hposweep.config.schema`) has accepted every section."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

from pydantic import TypeAdapter, ValidationError

from hposweep.config.schema import (
    BUILTIN_COST_METRICS,
    BUILTIN_HYPERPARAMETERS,
    BUILTIN_METRICS,
    BUILTIN_TRAINER,
    EPOCH_PRUNERS,
    FOLD_PRUNERS,
    LOG_FRONT,
    SAFE_NAME,
    ParamSpec,
    SweepConfig,
    TrainConfig,
    study_name_for,
)


class Broken(Exception):
    """A rule ``key`` breaks; ``involves``: the other keys the rule read."""

    def __init__(self, key: str, problem: str, involves: tuple[str, ...] = ()) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem, self.involves = key, problem, involves


def fail(key: str, problem: str, involves: tuple[str, ...] = ()) -> NoReturn:
    raise Broken(key, problem, involves)


def check(cfg: SweepConfig, check_files: bool = True) -> None:
    """Raise :class:`Broken` for the first rule ``cfg`` breaks.

    ``check_files=False`` skips checking that the data files exist: the commands that only
    read a study (status, best, compare, export, plot) do not need them.
    """
    _study_names(cfg)
    _objective_metrics(cfg)
    _fold_pruner(cfg)
    _search_space(cfg)
    _dataset(cfg)
    if check_files:
        _data_files(cfg)
    if os.path.exists(cfg.output_dir) and not os.path.isdir(cfg.output_dir):  # never raise
        fail("output_dir", f"{cfg.output_dir!r} exists and is not a directory")


def _study_names(cfg: SweepConfig) -> None:
    names = [study_name_for(cfg, b) for b in cfg.backbones]
    for name in names:
        if not SAFE_NAME.match(name) or ".." in name:
            fail("study.name", f"{name!r} is not a safe file name (letters, digits, . _ - only)",
                 ("backbones",))
    if len(set(names)) != len(names):
        fail("study.name", "must contain {backbone} when several backbones are swept",
             ("backbones",))


def _builtin_metric(key: str, metric: str) -> None:
    if metric not in BUILTIN_METRICS and not metric.startswith("f1-span-"):
        fail(key, f"the built-in trainer does not report {metric!r}; one of "
                  f"{', '.join(BUILTIN_METRICS)} or f1-span-<ENTITY>", ("train.trainer",))


def _objective_metrics(cfg: SweepConfig) -> None:
    """What the built-in trainer reports, and what a Pareto front needs."""
    from hposweep.objectives.spec import parse_constraint, uses_front

    s = cfg.study
    if cfg.train.trainer == BUILTIN_TRAINER:
        if s.objectives:
            for i, objective in enumerate(s.objectives):
                _builtin_metric(f"study.objectives[{i}].metric", objective.metric)
        else:
            _builtin_metric("study.objective_metric", s.objective_metric)
        primary = s.objectives[0].metric if s.objectives else s.objective_metric
        if primary in BUILTIN_COST_METRICS:
            fail("study.objectives[0].metric" if s.objectives else "study.objective_metric",
                 f"the built-in trainer reports {primary!r} once, after training, not per "
                 "epoch: make it a later objective or a constraint", ("train.trainer",))
        for i, text in enumerate(s.constraints):
            _builtin_metric(f"study.constraints[{i}]", parse_constraint(text).metric)
    if cfg.mlflow.log_best_checkpoint == LOG_FRONT and not uses_front(cfg):
        fail("mlflow.log_best_checkpoint", f"{LOG_FRONT!r} needs several study.objectives or "
             "study.constraints (a study with a Pareto front)",
             ("study.objectives", "study.constraints"))
    if cfg.final.select is not None and not uses_front(cfg):
        fail("final.select", "picks a member of a Pareto front: it needs several "
             "study.objectives or study.constraints", ("study.objectives", "study.constraints"))


def _fold_pruner(cfg: SweepConfig) -> None:
    """A pruner that compares folds needs enough of them to ever prune; ``folds`` adds
    one to an epoch-level pruner only."""
    pruner, k_fold = cfg.study.pruner, cfg.k_fold
    if pruner.folds is not None and pruner.name not in EPOCH_PRUNERS:
        fail("study.pruner.folds", f"adds a fold-level test to an epoch-level pruner "
             f"({', '.join(EPOCH_PRUNERS)}), not to {pruner.name}: for fold-level pruning "
             f"alone use name: {pruner.folds}", ("study.pruner.name",))
    name = pruner.folds or pruner.name
    key = "study.pruner.folds" if pruner.folds else "study.pruner.name"
    if name not in FOLD_PRUNERS:
        return
    if not k_fold.enabled:
        fail(key, f"{name} prunes between folds: it needs k_fold.enabled=true",
             ("k_fold.enabled",))
    first = max(2, pruner.n_startup_steps)  # folds compared before the first decision
    if first > k_fold.n_splits - 1:
        fail("study.pruner", f"{name} decides after {first} folds at the earliest "
             f"(n_startup_steps={pruner.n_startup_steps}; never before 2) and never after the "
             f"last, so with k_fold.n_splits={k_fold.n_splits} it would never prune: use "
             f"k_fold.n_splits of at least {first + 1}", ("k_fold.n_splits",))
    pairs = k_fold.n_splits - 1  # folds it can compare before the last
    if pruner.p_threshold <= 0.5 ** pairs:
        fail("study.pruner.p_threshold",
             f"{name} compares at most {pairs} folds before the last, and the smallest "
             f"p-value {pairs} pairs can give is {0.5 ** pairs:g}: with p_threshold="
             f"{pruner.p_threshold:g} it would never prune; use a p_threshold above "
             f"{0.5 ** pairs:g} or more folds", (key, "k_fold.n_splits"))


def _search_space(cfg: SweepConfig) -> None:
    if not cfg.search_space:
        fail("search_space", "is empty: name at least one hyperparameter to search")
    builtin = cfg.train.trainer == BUILTIN_TRAINER
    for name, spec in cfg.search_space.items():
        key = f"search_space.{name}"
        if builtin and name in BUILTIN_HYPERPARAMETERS:
            for attr, value in _reachable_ends(spec):
                _within_default_range(f"{key}.{attr}", name, value)
        if cfg.study.sampler.name == "grid" and spec.type == "float" and spec.step is None:
            fail(key, "the grid sampler needs a step (or categorical choices) for every float",
                 ("study.sampler.name",))


def _reachable_ends(spec: ParamSpec) -> list[tuple[str, Any]]:
    """The values that bound what a search space entry can sample, by the key holding them."""
    if spec.type == "categorical":
        return [("choices", choice) for choice in spec.choices or []]
    return [("low", spec.low), ("high", spec.high)]


_DEFAULTS: dict[str, TypeAdapter[Any]] = {}


def _within_default_range(key: str, name: str, value: Any) -> None:
    """A value a search space can sample is one the ``train`` default of that name could be."""
    field = TrainConfig.model_fields[name]
    if name not in _DEFAULTS:
        from typing import Annotated

        _DEFAULTS[name] = TypeAdapter(Annotated[(field.annotation, *field.metadata)])
    number = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
    try:
        if not number:
            raise ValueError(value)
        _DEFAULTS[name].validate_python(value)
    except (ValueError, ValidationError):
        fail(key, f"must be {field.description}, got {value!r}")


def _dataset(cfg: SweepConfig) -> None:
    d = cfg.data
    if d.dataset is not None and d.dataset.validation_split is not None and cfg.k_fold.enabled:
        fail("data.dataset.validation_split",
             "applies with k_fold.enabled=false only (each fold validates on part of the "
             f"training split): set k_fold.enabled=false to validate on "
             f"{d.dataset.validation_split!r}", ("k_fold.enabled",))


def _data_files(cfg: SweepConfig) -> None:
    from glob import glob

    d = cfg.data
    if d.dataset is not None and not Path(d.dataset.path).exists() and not glob(d.dataset.path):
        fail("data.dataset.path", f"not found: {d.dataset.path}{_relative_to(d.dataset.path)}")
    for key in ("train", "validation", "test"):
        value = getattr(d, key)
        if value is not None and not Path(value).is_file():
            fail(f"data.{key}", f"file not found: {value}{_relative_to(value)}")


def _relative_to(path: str) -> str:
    """How a relative path that was not found was read: from the working directory."""
    return "" if Path(path).is_absolute() else f" (relative to the working directory, {os.getcwd()})"
