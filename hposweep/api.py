"""The trainer contract: what a trainer receives, returns and may raise.

A trainer is a function ``train(params, data, ctx) -> metrics``. It knows nothing of
Optuna or MLflow: it gets the trial's hyperparameters, the fold's data (:class:`FoldData`)
and a :class:`TrialContext`, and returns a dict of metrics that includes the study's
objective. This module is the one place to import from::

    from hposweep.api import FoldData, Pruned, TrialContext, TrialFailed
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hposweep.config.schema import SweepConfig

__all__ = ["Example", "FoldData", "Pruned", "TrainFn", "TrialContext", "TrialFailed"]


@dataclass(frozen=True)
class Example:
    tokens: tuple[str, ...]
    tags: tuple[str, ...] = ()
    label: str | None = None
    text_pair: tuple[str, ...] | None = None  # the second text of a sentence pair


@dataclass(frozen=True)
class FoldData:
    """What a trainer trains and evaluates on for one fold (or the one split)."""

    train: list[Example]
    validation: list[Example]
    # The model's labels, id by id, the same in every fold and every run of a study: a
    # ClassLabel's names in their order when the data has one, else every label in the
    # data sorted ('O' first, whole numbers by value).
    labels: list[str]
    fold: int | None  # None when k-fold is off


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
    _record: Callable[[str, float], None] = lambda name, value: None
    # What the trial recorded so far (every fold's context of one trial shares it).
    recorded: dict[str, float] = field(default_factory=dict)
    # The final stage (``final.refit``): one call after the sweep, with the chosen trial's
    # params; ``data.train`` is all the training data, ``data.validation`` the test set
    # (empty without one). Train exactly ``params["epochs"]`` epochs (never select or stop
    # on the test set), save to ``checkpoint_dir``, return the test set's metrics ({}
    # without one). ``fold`` is None; ``report`` shows progress only.
    final: bool = False

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

    def record(self, name: str, value: float) -> None:
        """Record a fact about how the trial trained (e.g. the per-step batch that fit in
        memory): an Optuna user attribute of the trial and a metric of its MLflow run. A
        later call with the same name replaces the value."""
        self.recorded[name] = value
        self._record(name, value)


class TrainFn(Protocol):
    def __call__(
        self, params: dict[str, Any], data: FoldData, ctx: TrialContext
    ) -> Mapping[str, float]: ...
