"""One trial's life: its parameters, its folds through the trainer, its report steps, its
record in the study, its checkpoint and its MLflow runs.

Only the trainer's own exceptions fail a trial (FAIL, with the reason); ``Pruned``
prunes it. Anything else that goes wrong here is a bug of ours and propagates (the
trial loop fails the trial in the study, the CLI prints the traceback).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hposweep import interrupts, recovery
from hposweep.api import FoldData, Pruned, TrainFn, TrialContext, TrialFailed
from hposweep.checkpoints import CheckpointLayout, CheckpointManager
from hposweep.config import SweepConfig
from hposweep.console import SweepConsole
from hposweep.errors import InternalError, first_line
from hposweep.faults import kill_point
from hposweep.objectives import constraints_of, objectives_of, required_metrics
from hposweep.optimize import Outcome
from hposweep.results import (
    FAIL_REASON_ATTR,
    FOLD_VALUES_ATTR,
    PRUNE_REASON_ATTR,
    RETRIED_FROM_ATTR,
    TRIAL_ATTR,
)
from hposweep.resume import TrialResume
from hposweep.space import suggest
from hposweep.study import OpenStudy
from hposweep.tracking import SweepTracker


@dataclass(frozen=True)
class TrialEnv:
    """What every trial of one backbone's sweep shares."""

    cfg: SweepConfig
    backbone: str
    opened: OpenStudy
    folds: list[FoldData]
    trainer: TrainFn
    layout: CheckpointLayout
    checkpoints: CheckpointManager
    tracker: SweepTracker
    console: SweepConsole
    metadata: Callable[..., dict[str, Any]]  # (number, params, metrics, fold, value) -> dict


class TrialRun:
    """Runs one Optuna trial; :meth:`run` returns its :class:`Outcome`."""

    def __init__(self, env: TrialEnv, trial: Any) -> None:
        self.env = env
        self.trial = trial
        self.number: int = trial.number
        self.params: dict[str, Any] = {}
        self.run_id: str | None = None
        self.resume = TrialResume(env.layout, recovery.root_trial(trial), env.console.warn)

    def run(self) -> Outcome:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        try:
            value = self._train()
        except UpdateFinishedTrialError:  # another worker failed it (its heartbeat was missed)
            self._end("KILLED", "failed by another worker while it ran")
            return Outcome(TrialState.FAIL, lost=True)
        except Pruned as exc:
            self.trial.set_user_attr(PRUNE_REASON_ATTR, str(exc))
            self._end("PRUNED", str(exc))
            return Outcome(TrialState.PRUNED)
        except TrialFailed as exc:
            self.trial.set_user_attr(FAIL_REASON_ATTR, str(exc))
            self._end("FAIL", str(exc))
            return Outcome(TrialState.FAIL)
        except KeyboardInterrupt:
            interrupts.received()
            self._interrupted()
            raise
        except BaseException as exc:  # ours, not the trainer's: end its runs, then surface it
            self._end("FAIL", f"internal error: {type(exc).__name__}: {first_line(exc)}")
            raise
        return Outcome(TrialState.COMPLETE, value)

    def _train(self) -> float | list[float]:
        env, cfg = self.env, self.env.cfg
        self.params = suggest(self.trial, cfg.search_space)
        retried_from = self.trial.user_attrs.get(RETRIED_FROM_ATTR)
        self.run_id = env.tracker.start_trial(self.number, self.params, retried_from)
        if self.run_id is not None:
            self.trial.set_user_attr(TRIAL_ATTR, {"owner": recovery.owner_identity(),
                                                  "mlflow_run_id": self.run_id})
        env.console.trial_started(self.number, self.params, retried_from)
        completed = self.resume.completed_folds()
        fold_metrics = [completed.get(i) or self._fold(i) for i in range(len(env.folds))]
        metric = cfg.study.objective_metric
        mean = _mean(fold_metrics)
        for constraint in constraints_of(cfg):  # before tell: samplers read them then
            self.trial.set_constraint(constraint.key, constraint.violation(mean))
        if len(fold_metrics) > 1:
            self.trial.set_user_attr(FOLD_VALUES_ATTR, [m[metric] for m in fold_metrics])
        env.checkpoints.trial_valued(self.number, lambda: env.metadata(
            self.number, self.params, mean, env.folds[-1].fold, mean[metric]))
        env.tracker.end_run(self.run_id, "COMPLETE",
                            metrics={**mean, **_per_fold(fold_metrics, env.folds)})
        self.resume.remove()
        objectives = objectives_of(cfg)
        return [mean[o.metric] for o in objectives] if len(objectives) > 1 else mean[metric]

    # ------------------------------------------------------------ one fold

    def _fold(self, index: int) -> dict[str, float]:
        env, cfg = self.env, self.env.cfg
        fold = env.folds[index]
        last = index == len(env.folds) - 1
        target = env.checkpoints.target_for_fold(self.number, fold.fold, last)
        fold_run = (env.tracker.start_fold(self.run_id, self.number, index)
                    if fold.fold is not None else None)
        logged_any = False

        def log_metrics(metrics: Mapping[str, float], step: int) -> None:
            nonlocal logged_any
            logged_any = True
            env.tracker.log(fold_run or self.run_id, metrics, step=step)

        resuming = cfg.train.resume_every_epochs or cfg.train.resume_every_steps
        ctx = TrialContext(
            config=cfg, backbone=env.backbone, trial_number=self.number, fold=fold.fold,
            seed=cfg.train.seed, objective_metric=cfg.study.objective_metric,
            checkpoint_dir=target, resume_dir=self.resume.fold_dir(index) if resuming else None,
            _report=_ours(lambda value, epoch: self._report(index, value, epoch)),
            _should_prune=_ours(self.trial.should_prune if not self._several_objectives()
                                else lambda: False),  # Optuna prunes one objective only
            _log_metrics=_ours(log_metrics),
            _warn=env.console.warn,
        )
        try:
            metrics = _checked_metrics(self._call_trainer(fold, ctx), required_metrics(cfg))
        except BaseException as exc:
            # isinstance: SIGTERM's Terminated is a KeyboardInterrupt too.
            if isinstance(exc, KeyboardInterrupt):
                interrupts.received()
            state = ("PRUNED" if isinstance(exc, Pruned) else
                     "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAIL")
            env.tracker.end_run(fold_run, state)
            raise
        # A trainer that logged no per-epoch metrics gets its result logged once.
        env.tracker.end_run(fold_run, "COMPLETE", metrics=None if logged_any else metrics)
        env.checkpoints.fold_finished(self.number, lambda: env.metadata(
            self.number, self.params, metrics, fold.fold, metrics[cfg.study.objective_metric]))
        if not last:  # the last fold's state stays until the trial is recorded
            self.resume.record_fold(index, metrics)
        return metrics

    def _call_trainer(self, fold: FoldData, ctx: TrialContext) -> Any:
        """The trainer's own exceptions fail the trial; ours (through ``ctx``) do not."""
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            return self.env.trainer(self.params, fold, ctx)
        except (Pruned, TrialFailed, InternalError, UpdateFinishedTrialError):
            raise
        except Exception as exc:
            self.env.console.debug_exception(exc)
            raise TrialFailed(f"{type(exc).__name__}: {first_line(exc)}") from exc

    def _report(self, index: int, value: float, epoch: int) -> None:
        """Fold ``index``'s epoch ``epoch`` is reported at step ``index * epochs + epoch``:
        derived, never counted, so a retried trial whose first folds finished earlier
        reports its next fold at that fold's own steps."""
        epochs = self._epochs()
        if len(self.env.folds) > 1 and not 0 <= epoch < epochs:
            raise TrialFailed(f"ctx.report(step={epoch}): with k-fold, report each epoch "
                              f"0..{epochs - 1} of the fold (the trial's epochs: {epochs})")
        if not self._several_objectives():  # Optuna's report takes one objective only
            self.trial.report(value, index * epochs + epoch)
        fold = self.env.folds[index].fold
        self.env.console.progress(self.number, fold, len(self.env.folds), epoch, value)
        kill_point(f"trial{self.number}:fold{index}:epoch{epoch}")

    def _several_objectives(self) -> bool:
        return len(objectives_of(self.env.cfg)) > 1

    def _epochs(self) -> int:
        return int(self.params.get("epochs", self.env.cfg.train.epochs))

    # ------------------------------------------------------------ endings

    def _end(self, state: str, reason: str, keep_resume: bool = False) -> None:
        self.env.checkpoints.discard(self.number)
        if not keep_resume:
            self.resume.remove()
        self.env.tracker.end_run(self.run_id, state, reason)

    def _interrupted(self) -> None:
        """Ctrl-C/SIGTERM: the retry is queued now, by the only process that knows; the
        next run (or another worker) continues it from its resume state."""
        opened = self.env.opened
        self.trial.set_user_attr(FAIL_REASON_ATTR, "interrupted")
        recovery.retry_trial(opened.study, opened.frozen_trial(self.number),
                             self.env.cfg.study.max_retry)
        self._end("KILLED", "interrupted", keep_resume=True)
        self.env.console.trial_finished(self.number, "FAIL", None, reason="interrupted")


def _ours(callback: Callable[..., Any]) -> Callable[..., Any]:
    """A ``ctx`` callback: its errors are hposweep's, even when raised inside the trainer."""

    def call(*args: Any) -> Any:
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            return callback(*args)
        except (Pruned, TrialFailed, KeyboardInterrupt, UpdateFinishedTrialError):
            raise
        except Exception as exc:
            raise InternalError(f"{type(exc).__name__}: {first_line(exc)}") from exc

    return call


def _checked_metrics(metrics: Any, required: list[str]) -> dict[str, float]:
    """The trainer's metrics as floats; each of ``required`` (the objectives, then what the
    constraints name) present and finite."""
    if not isinstance(metrics, Mapping):
        raise TrialFailed(f"the trainer returned {type(metrics).__name__}, not a dict of metrics")
    for objective in required:
        if objective not in metrics:
            raise TrialFailed(f"the trainer's metrics have no {objective!r}: {sorted(metrics)}")
    try:
        clean = {str(k): float(v) for k, v in metrics.items()}
    except (TypeError, ValueError) as exc:
        raise TrialFailed(f"the trainer's metrics must be numbers: {exc}") from None
    for objective in required:
        if not math.isfinite(clean[objective]):
            raise TrialFailed(f"{objective} is {clean[objective]}")
    return clean


def _mean(fold_metrics: list[dict[str, float]]) -> dict[str, float]:
    keys = set.intersection(*(set(m) for m in fold_metrics))
    return {k: sum(m[k] for m in fold_metrics) / len(fold_metrics) for k in sorted(keys)}


def _per_fold(fold_metrics: list[dict[str, float]], folds: list[FoldData]) -> dict[str, float]:
    if len(folds) < 2:
        return {}
    return {f"fold{i}/{k}": v for i, m in enumerate(fold_metrics) for k, v in m.items()}
