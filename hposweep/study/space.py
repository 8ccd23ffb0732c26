"""The config's ``search_space`` turned into Optuna suggestions (and grids)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hposweep.config.schema import ParamSpec, SweepConfig


def suggest(trial: Any, space: dict[str, ParamSpec]) -> dict[str, Any]:
    """Sample one value per hyperparameter on an Optuna trial."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.type == "categorical":
            params[name] = trial.suggest_categorical(name, list(spec.choices or []))
        elif spec.type == "int":
            step = int(spec.step) if spec.step is not None else 1
            params[name] = trial.suggest_int(name, int(spec.low), int(spec.high), step=step,
                                             log=spec.log)
        else:
            params[name] = trial.suggest_float(name, float(spec.low), float(spec.high),
                                               step=spec.step, log=spec.log)
    return params


def epochs_of(params: Mapping[str, Any], default: int) -> int:
    """The epochs a trial trains: its sampled ``epochs`` when the search space has it, else
    ``default`` (``train.epochs``)."""
    return int(params.get("epochs", default))


def largest_epochs(cfg: SweepConfig) -> int:
    """The most epochs a trial trains: the largest value a searched ``epochs`` can take,
    else ``train.epochs``."""
    spec = cfg.search_space.get("epochs")
    if spec is None:
        return cfg.train.epochs
    ends = spec.choices if spec.type == "categorical" else [spec.high]
    return max(int(end) for end in ends or [cfg.train.epochs])


def grid(space: dict[str, ParamSpec]) -> dict[str, list[Any]]:
    """Every value of every hyperparameter, for Optuna's GridSampler."""
    values: dict[str, list[Any]] = {}
    for name, spec in space.items():
        if spec.type == "categorical":
            values[name] = list(spec.choices or [])
            continue
        assert spec.low is not None and spec.high is not None
        step = spec.step if spec.step is not None else 1
        count = int(round((spec.high - spec.low) / step)) + 1
        points = [spec.low + i * step for i in range(count)]
        values[name] = ([int(p) for p in points] if spec.type == "int"
                        else [round(p, 12) for p in points])
    return values


def describe(spec: ParamSpec) -> str:
    """A short human-readable form of a distribution, e.g. ``float[1e-05, 0.0005] log``."""
    if spec.type == "categorical":
        return f"categorical{list(spec.choices or [])}"
    text = f"{spec.type}[{spec.low:g}, {spec.high:g}]"
    if spec.step is not None:
        text += f" step {spec.step:g}"
    return text + (" log" if spec.log else "")
