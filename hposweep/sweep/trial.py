"""One trial's life: its parameters, its folds through the trainer, its report steps, its
record in the study, its checkpoint and its MLflow runs.

Only the trainer's own exceptions fail a trial (FAIL, with the reason); ``Pruned``
prunes it. Anything else that goes wrong here is a bug of ours and propagates (the
trial loop fails the trial in the study, the CLI prints the traceback).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hposweep import interrupts
from hposweep._testing.faults import kill_point
from hposweep.api import FoldData, Pruned, TrainFn, TrialContext, TrialFailed
from hposweep.checkpoints.layout import CheckpointLayout
from hposweep.checkpoints.manager import CheckpointManager
from hposweep.checkpoints.metadata import CheckpointMetadata
from hposweep.checkpoints.resume import TrialResume
from hposweep.config.schema import SweepConfig
from hposweep.console.live import LiveConsole, place
from hposweep.errors import DeviceFailed, InternalError, first_line
from hposweep.objectives.spec import constraints_of, objectives_of, required_metrics
from hposweep.results import (
    BEST_EPOCH_ATTR,
    FAIL_REASON_ATTR,
    FOLD_VALUES_ATTR,
    PRUNE_REASON_ATTR,
    RETRIED_FROM_ATTR,
    TRIAL_ATTR,
    WARM_START_ATTR,
)
from hposweep.study import recovery
from hposweep.study.loop import Outcome
from hposweep.study.open import OpenStudy
from hposweep.study.samplers import make_fold_test
from hposweep.study.space import epochs_of, suggest
from hposweep.tracking.tracker import SweepTracker
from hposweep.training.device import (
    is_fatal_device_error,
    is_out_of_memory,
    out_of_memory_reason,
    resolve_device,
)


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
    console: LiveConsole
    metadata: Callable[..., CheckpointMetadata]  # (number, params, metrics, fold, value)
    device: Callable[[], dict[str, Any]]  # what a trial records of its device ({}: unknown)


class TrialRun:
    """Runs one Optuna trial; :meth:`run` returns its :class:`Outcome`."""

    def __init__(self, env: TrialEnv, trial: Any) -> None:
        self.env = env
        self.trial = trial
        self.number: int = trial.number
        self.params: dict[str, Any] = {}
        self.run_id: str | None = None
        self.resume = TrialResume(env.layout, recovery.root_trial(trial), env.console.warn)
        self.by_fold = env.opened.report_steps == "fold"  # a fold-level pruner (wilcoxon)
        # The steps' values are running estimates of the objective (not raw epoch scores).
        self.estimates = env.opened.report_steps == "estimate"
        self.fold_test = make_fold_test(env.cfg)  # None without study.pruner.folds
        self.fold_metrics: list[dict[str, float]] = []  # each finished fold's, in order
        self.curves: dict[int, dict[int, float]] = {}  # fold index -> epoch -> its own score
        self.estimate: float | None = None  # the last running estimate reported
        # Set when the fold-level pruner stops the trial: the folds it ran, their mean.
        self.pruned_metrics: dict[str, float] | None = None
        self.last_epoch: dict[int, int] = {}  # fold index -> its last epoch reported
        self.recorded: dict[str, float] = {}  # ctx.record of every fold

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
            self._end("PRUNED", str(exc), metrics=self.pruned_metrics)
            metric = self.env.cfg.study.objective_metric
            return Outcome(TrialState.PRUNED,
                           self.pruned_metrics[metric] if self.pruned_metrics else None)
        except TrialFailed as exc:
            self.trial.set_user_attr(FAIL_REASON_ATTR, str(exc))
            self._end("FAIL", str(exc))
            return Outcome(TrialState.FAIL)
        except KeyboardInterrupt:
            interrupts.received()
            self._interrupted()
            raise
        except DeviceFailed as exc:
            self._retry_elsewhere(str(exc))
            raise DeviceFailed(f"{exc}: this process's device is unusable, so it stops; the "
                               "trial is queued again with the same parameters for the next "
                               "`hposweep run` (or another worker)") from None
        except BaseException as exc:  # ours, not the trainer's: end its runs, then surface it
            self._end("FAIL", f"internal error: {type(exc).__name__}: {first_line(exc)}")
            raise
        return Outcome(TrialState.COMPLETE, value)

    def _train(self) -> float | list[float]:
        env, cfg = self.env, self.env.cfg
        self.params = suggest(self.trial, cfg.search_space)
        retried_from = self.trial.user_attrs.get(RETRIED_FROM_ATTR)
        device = env.device()
        self.run_id = env.tracker.start_trial(self.number, self.params, retried_from,
                                              tags={k: str(v) for k, v in device.items()})
        self._record_trial(device)
        warm_start = self.trial.user_attrs.get(WARM_START_ATTR)
        if warm_start is not None:
            env.tracker.log(self.run_id, tags={WARM_START_ATTR: warm_start["source"]})
        env.console.trial_started(self.number, self.params, retried_from)
        completed = self.resume.completed_folds()
        self.curves = self.resume.completed_curves()
        fold_metrics = self.fold_metrics
        metric = cfg.study.objective_metric
        for index in range(len(env.folds)):
            fold_metrics.append(completed.get(index) or self._fold(index))
            if self.by_fold:
                self._fold_scored(index)
            elif self._reports_epochs():
                self._fold_finished(index, replayed=self.estimates and index in completed)
        mean = _mean(fold_metrics)
        for constraint in constraints_of(cfg):  # before tell: samplers read them then
            self.trial.set_constraint(constraint.key, constraint.violation(mean))
        if len(fold_metrics) > 1:
            self.trial.set_user_attr(FOLD_VALUES_ATTR, self.finished)
        if "best_epoch" in mean:  # what final.epochs: best trains for
            self.trial.set_user_attr(BEST_EPOCH_ATTR, mean["best_epoch"])
        env.checkpoints.trial_valued(self.number, lambda: env.metadata(
            self.number, self.params, mean, env.folds[-1].fold, mean[metric]))
        env.tracker.end_run(self.run_id, "COMPLETE",
                            metrics={**mean, **_per_fold(fold_metrics, env.folds)})
        self.resume.remove()
        objectives = objectives_of(cfg)
        return [mean[o.metric] for o in objectives] if len(objectives) > 1 else mean[metric]

    def _record_trial(self, device: dict[str, Any]) -> None:
        """Complete the trial's record in the study (``TRIAL_ATTR``, one dict: one write):
        admission wrote its owner; its MLflow run, link and device join it here. What else
        a trial records as it starts belongs in this dict: it costs no further write. The
        link comes first: optuna-dashboard shows the dict as JSON cut at 1,024 characters."""
        if self.run_id is None and not device:
            return
        link = self.env.tracker.run_link(self.run_id)
        run = {**({"mlflow_run_url": link} if link != self.run_id else {}),
               "mlflow_run_id": self.run_id}
        # The run's keys first, the owner and the device after them.
        self.trial.set_user_attr(TRIAL_ATTR, {
            **run, **self.trial.user_attrs.get(TRIAL_ATTR, {}), **device, **run})

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
            _report=ours(lambda value, epoch: self._report(index, value, epoch)),
            _should_prune=ours(self._should_prune_in_fold), _log_metrics=ours(log_metrics),
            _warn=env.console.warn, _record=ours(self._record), recorded=self.recorded,
        )
        try:
            metrics = checked_metrics(self._call_trainer(fold, ctx), required_metrics(cfg))
        except Pruned as exc:  # the trainer's: the reason says where, as the live view does
            env.tracker.end_run(fold_run, "PRUNED")
            where = place(fold.fold, len(env.folds), self.last_epoch.get(index))
            where = "" if where in str(exc) else where
            if self.estimate is not None and len(env.folds) > 1:
                where += (f"{'; ' if where else ''}running estimate of "
                          f"{cfg.study.objective_metric} {self.estimate:.4f}")
            if where:
                raise Pruned(f"{exc} ({where})") from None
            raise
        except BaseException as exc:
            # isinstance: SIGTERM's Terminated is a KeyboardInterrupt too.
            if isinstance(exc, KeyboardInterrupt):
                interrupts.received()
            env.tracker.end_run(fold_run, "KILLED" if isinstance(exc, KeyboardInterrupt)
                                else "FAIL")
            raise
        # A trainer that logged no per-epoch metrics gets its result logged once.
        env.tracker.end_run(fold_run, "COMPLETE", metrics=None if logged_any else metrics)
        env.checkpoints.fold_finished(self.number, lambda: env.metadata(
            self.number, self.params, metrics, fold.fold, metrics[cfg.study.objective_metric]))
        if not last:  # the last fold's state stays until the trial is recorded
            self.resume.record_fold(index, metrics, self.curves.get(index, {}))
        return metrics

    def _call_trainer(self, fold: FoldData, ctx: TrialContext) -> Any:
        return call_trainer(self.env, self.params, fold, ctx, f"trial {self.number}")

    def _record(self, name: str, value: float) -> None:
        self.trial.set_user_attr(name, value)
        self.env.tracker.log(self.run_id, {name: float(value)})

    @property
    def finished(self) -> list[float]:
        """The objective on each finished fold, in order."""
        return [m[self.env.cfg.study.objective_metric] for m in self.fold_metrics]

    def _fold_scored(self, index: int) -> None:
        """A fold-level pruner sees fold ``index``'s score at step ``index`` (folds are the
        same for every trial, so step k pairs fold k across trials), then decides; never
        after the last fold. Folds a retried trial took from its resume state are reported
        again: the retry is a new Optuna trial."""
        self.trial.report(self.finished[index], index)
        if index == len(self.env.folds) - 1 or not self.trial.should_prune():
            return
        self.trial.set_user_attr(FOLD_VALUES_ATTR, self.finished)
        self._pruned_after_fold(index)

    def _fold_finished(self, index: int, replayed: bool) -> None:
        """After fold ``index`` of a study of epoch steps. A fold a retried trial took from
        its resume state (``replayed``: in a study of running estimates) reports its
        estimate at its last step (the mean of the folds so far), so the retry's steps are
        those of a trial that ran it, in order (its curve, recorded with it, predicts the
        later folds as its predecessor's did).
        Then, with ``study.pruner.folds``, the fold-level test decides (never after the
        last fold: that trial is complete)."""
        epochs = self._epochs()
        if replayed:
            self.trial.report(statistics.fmean(self.finished), index * epochs + epochs - 1)
        if self.fold_test is None or index == len(self.env.folds) - 1:
            return
        self.trial.set_user_attr(FOLD_VALUES_ATTR, self.finished)
        # The test reads the trial's number and fold values: the live trial has both (its
        # user attributes as just set), so the stored trial is not read back.
        if self.fold_test.prune(self.trial.study, self.trial):
            self._pruned_after_fold(index)

    def _pruned_after_fold(self, index: int) -> None:
        """The fold-level pruner stops the trial after fold ``index`` (the caller has
        recorded its fold values, once)."""
        n_folds = len(self.env.folds)
        self.pruned_metrics = {**_mean(self.fold_metrics),
                               **_per_fold(self.fold_metrics, self.env.folds)}
        raise Pruned(f"pruned after fold {index + 1}/{n_folds}: worse than the best trial "
                     f"fold by fold (Wilcoxon, p < {self.env.cfg.study.pruner.p_threshold})")

    def _should_prune_in_fold(self) -> bool:
        """``ctx.should_prune()``: a fold-level pruner decides between folds, not within."""
        return self._reports_epochs() and self.trial.should_prune()

    def _reports_epochs(self) -> bool:
        """Epoch values reach Optuna's pruner, unless a fold-level pruner decides (wilcoxon)
        or the study has several objectives (Optuna prunes single-objective trials only)."""
        return not self.by_fold and not self._several_objectives()

    def _report(self, index: int, value: float, epoch: int) -> None:
        """Fold ``index``'s epoch ``epoch`` is reported at step ``index * epochs + epoch``:
        derived, never counted, so a retried trial whose first folds finished earlier
        reports its next fold at that fold's own steps. The value reported is the running
        estimate of the objective (:func:`running_estimate`; the raw ``value`` in a study
        that reported raw epoch scores); the progress display and MLflow get the fold's own
        ``value``. With a fold-level pruner epochs are progress only (the study's steps are
        folds: :meth:`_fold_scored`)."""
        epochs = self._epochs()
        if len(self.env.folds) > 1 and not 0 <= epoch < epochs:
            raise TrialFailed(f"ctx.report(step={epoch}): with k-fold, report each epoch "
                              f"0..{epochs - 1} of the fold (the trial's epochs: {epochs})")
        self.curves.setdefault(index, {})[epoch] = value
        if self._reports_epochs():
            reported = value
            if self.estimates:
                reported = self.estimate = running_estimate(self.finished, self.curves, epoch,
                                                            value)
            self.trial.report(reported, index * epochs + epoch)
        self.last_epoch[index] = epoch
        fold = self.env.folds[index].fold
        self.env.console.progress(self.number, fold, len(self.env.folds), epoch, value)
        kill_point(f"trial{self.number}:fold{index}:epoch{epoch}")

    def _several_objectives(self) -> bool:
        return len(objectives_of(self.env.cfg)) > 1

    def _epochs(self) -> int:
        return epochs_of(self.params, self.env.cfg.train.epochs)

    # ------------------------------------------------------------ endings

    def _end(self, state: str, reason: str, keep_resume: bool = False,
             metrics: dict[str, float] | None = None) -> None:
        self.env.checkpoints.discard(self.number)
        if not keep_resume:
            self.resume.remove()
        self.env.tracker.end_run(self.run_id, state, reason, metrics=metrics)

    def _interrupted(self) -> None:
        """Ctrl-C/SIGTERM: the retry is queued now, by the only process that knows; the
        next run (or another worker) continues it from its resume state."""
        self._retry_elsewhere("interrupted")

    def _retry_elsewhere(self, reason: str) -> None:
        """This process stops: the trial's retry is queued now, by the only process that
        knows; the next run (or another worker) continues it from its resume state."""
        opened = self.env.opened
        self.trial.set_user_attr(FAIL_REASON_ATTR, reason)
        recovery.retry_trial(opened.study, opened.frozen_trial(self.number),
                             self.env.cfg.study.max_retry)
        self._end("KILLED", reason, keep_resume=True)
        self.env.console.trial_finished(self.number, "FAIL", None, reason=reason)


def running_estimate(finished: list[float], curves: dict[int, dict[int, float]], epoch: int,
                     value: float) -> float:
    """The trial's final objective as it looks at the current fold's epoch ``epoch``: the
    mean of the finished folds' scores (``finished``) and the current fold's predicted
    score. The prediction is ``value`` plus what the finished folds gained from that epoch
    to their end (their score minus their own score at ``epoch``, from ``curves``,
    averaged); in fold 0 (or with no curve known) it is ``value`` itself. So a trial whose
    folds rise slowly is not judged again at every fold's first epochs: past fold 0, its
    steps estimate the same final value all along."""
    gaps = [score - curves[j][epoch] for j, score in enumerate(finished)
            if epoch in curves.get(j, {})]
    predicted = value + (statistics.fmean(gaps) if gaps else 0.0)
    return (sum(finished) + predicted) / (len(finished) + 1)


def call_trainer(env: TrialEnv, params: dict[str, Any], data: FoldData, ctx: TrialContext,
                 who: str) -> Any:
    """The trainer's own exceptions fail the trial (or the final stage, ``who``); ours
    (through ``ctx``) do not."""
    from optuna.exceptions import UpdateFinishedTrialError

    try:
        return env.trainer(params, data, ctx)
    except (Pruned, TrialFailed, InternalError, UpdateFinishedTrialError):
        raise
    except Exception as exc:
        env.console.debug_exception(exc)
        if is_fatal_device_error(exc):
            raise DeviceFailed(f"{who}: {first_line(exc)}") from None
        if is_out_of_memory(exc):
            batch_size = params.get("batch_size", env.cfg.train.batch_size)
            reason = out_of_memory_reason(int(batch_size), resolve_device(env.cfg.train.device))
        else:
            reason = f"{type(exc).__name__}: {first_line(exc)}"
    # Out of the except block: the trainer's frames (its model) are released, not
    # kept alive by the error's traceback for as long as the trial's record takes.
    raise TrialFailed(reason)


def ours(callback: Callable[..., Any]) -> Callable[..., Any]:
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


def checked_metrics(metrics: Any, required: list[str]) -> dict[str, float]:
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
