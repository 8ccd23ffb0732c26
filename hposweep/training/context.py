"""The contract between the sweep and a trainer (built-in or the user's own).

A trainer is a function ``train(params, data, ctx) -> metrics``. It knows nothing of
Optuna or MLflow: it gets the trial's hyperparameters, the fold's data and this
context, and returns a dict of metrics that includes the study's objective.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hposweep.config import SweepConfig
from hposweep.data import FoldData


class Pruned(Exception):
    """Raised by a trainer when ``ctx.should_prune()`` said so: the trial is PRUNED."""


class TrialFailed(Exception):
    """Raised by a trainer for a failure with a clear reason (e.g. NaN loss): the trial is FAIL."""


@dataclass
class TrialContext:
    config: SweepConfig
    backbone: str
    trial_number: int
    fold: int | None
    seed: int
    objective_metric: str
    # Where to save the model this trial may keep (``save_pretrained`` or a state dict);
    # None when the sweep will not keep this fold's model, so the trainer skips the save.
    checkpoint_dir: Path | None
    # Where to save (and find) full training state, so that a retried trial continues
    # where its predecessor stopped; None when resuming is off.
    resume_dir: Path | None
    _report: Callable[[float, int], None]
    _should_prune: Callable[[], bool]
    _log_metrics: Callable[[Mapping[str, float], int], None]
    _warn: Callable[[str], None]

    def report(self, value: float, step: int) -> None:
        """Report the objective after ``step`` (an epoch, from 0) for pruning and progress."""
        self._report(value, step)

    def should_prune(self) -> bool:
        return self._should_prune()

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self._log_metrics(metrics, step)

    def warn(self, message: str) -> None:
        """Tell the user about a problem that does not end the trial (e.g. a failed save)."""
        self._warn(message)


class TrainFn(Protocol):
    def __call__(
        self, params: dict[str, Any], data: FoldData, ctx: TrialContext
    ) -> Mapping[str, float]: ...


def load_trainer(spec: str) -> TrainFn:
    """``builtin`` or ``package.module:function`` (importable from the working directory)."""
    import importlib
    import sys

    from hposweep.errors import ConfigError

    if spec == "builtin":
        from hposweep.training.builtin import train

        return train
    module_name, _, function_name = spec.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"train.trainer: cannot import {module_name!r}: {exc}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"train.trainer: {module_name!r} has no function {function_name!r}")
    _check_signature(spec, function)
    return function  # type: ignore[no-any-return]


def _check_signature(spec: str, function: Callable[..., Any]) -> None:
    """Catch what can be caught before any trial: the arguments and a declared return."""
    import inspect
    import typing

    from hposweep.errors import ConfigError

    try:
        signature = inspect.signature(function)
        signature.bind(None, None, None)
    except TypeError:
        raise ConfigError(f"train.trainer: {spec} must accept (params, data, ctx)") from None
    except ValueError:
        return  # no signature to read (a builtin): trust it
    hints = typing.get_type_hints(function) if function.__annotations__ else {}
    declared = hints.get("return")
    if declared is not None:
        origin = typing.get_origin(declared) or declared
        if not (isinstance(origin, type) and issubclass(origin, Mapping)):
            raise ConfigError(f"train.trainer: {spec} is declared to return {declared!r}; it must "
                              "return a dict of metrics")
