"""The sweep: per backbone, an Optuna study whose objective trains every fold.

Data flows one way: the CLI hands a validated config here; this module drives the
study, the trainer, the checkpoint manager and the tracker, and tells the console.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hposweep import recovery
from hposweep.checkpoints import CheckpointLayout, CheckpointManager
from hposweep.config import (
    BUILTIN_TRAINER,
    LoadedConfig,
    SweepConfig,
    backbone_slug,
    study_name_for,
)
from hposweep.console import SweepConsole
from hposweep.data import FoldData, build_folds, load_training_examples
from hposweep.errors import first_line
from hposweep.faults import kill_point
from hposweep.provenance import git_commit, timestamp, versions
from hposweep.recovery import FAIL_REASON_ATTR, RETRIED_FROM_ATTR
from hposweep.results import (
    FINAL_LOGGED_ATTR,
    FOLD_VALUES_ATTR,
    PARENT_RUN_ATTR,
    PRUNE_REASON_ATTR,
    TRIAL_ATTR,
    BackboneResult,
    TrialRow,
    mlflow_run_of,
    reason_of,
)
from hposweep.resume import TrialResume, resume_roots
from hposweep.space import describe, suggest
from hposweep.study import RUN_ID_ATTR, finished_states, open_study, storage_kind, storage_url
from hposweep.tracking import SweepTracker
from hposweep.training.builtin import resolve_device
from hposweep.training.context import Pruned, TrainFn, TrialContext, TrialFailed, load_trainer


def run(loaded: LoadedConfig, console: SweepConsole, fresh: bool = False) -> list[BackboneResult]:
    """Run (or resume) the sweep of every backbone. Bad input raises before any trial."""
    cfg = loaded.config
    quiet_libraries()
    trainer = load_trainer(cfg.train.trainer)
    if cfg.k_fold.enabled and cfg.data.validation is not None:
        console.warn("data.validation is ignored: k-fold splits data.train "
                     "(k_fold.enabled=false uses the validation file)")
    folds = build_folds(cfg, load_training_examples(cfg))
    if cfg.train.trainer == BUILTIN_TRAINER:
        from hposweep.training.model import check_backbone

        for backbone in cfg.backbones:
            check_backbone(cfg, backbone)
    return [BackboneSweep(loaded, backbone, folds, trainer, console).run(fresh)
            for backbone in cfg.backbones]


def archive_studies(cfg: SweepConfig, console: SweepConsole, backbones: list[str]) -> None:
    """``--fresh``: move the study dirs aside (never deleted) and say where they went."""
    from hposweep.study import archive_study

    for backbone in backbones:
        moved = archive_study(cfg, study_name_for(cfg, backbone))
        if moved is not None:
            console.info(f"--fresh: the old study is now {moved}")


def quiet_libraries() -> None:
    """Keep the console ours: library progress bars and chatter off."""
    import optuna

    # Environment, not an import: a custom trainer's sweep need not load transformers (1 s).
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # RDB heartbeats are "experimental" in Optuna 5; we rely on them knowingly.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="seqeval")


class BackboneSweep:
    """One backbone: one study, one MLflow parent run, one best checkpoint."""

    def __init__(self, loaded: LoadedConfig, backbone: str, folds: list[FoldData],
                 trainer: TrainFn, console: SweepConsole) -> None:
        self.loaded = loaded
        self.cfg: SweepConfig = loaded.config
        self.backbone = backbone
        self.folds = folds
        self.trainer = trainer
        self.console = console
        self.study_name = study_name_for(self.cfg, backbone)
        self.tracker = SweepTracker(self.cfg, console.warn)
        self.study: Any = None
        self.storage: Any = None
        self.checkpoints: CheckpointManager | None = None
        self.layout: CheckpointLayout | None = None
        self._step_offset = 0

    @functools.cached_property
    def _device(self) -> str:
        """Recorded in checkpoint metadata; resolved once (asking CUDA costs ms) and only
        when a checkpoint is sealed."""
        return resolve_device(self.cfg.train.device)

    def run(self, fresh: bool) -> BackboneResult:
        import optuna

        cfg = self.cfg
        if fresh:
            archive_studies(cfg, self.console, [self.backbone])
        self.study, self.storage, resumed = open_study(cfg, self.study_name)
        self.layout = CheckpointLayout(self._backbone_dir(), self.study.user_attrs[RUN_ID_ATTR])
        self.layout.root.mkdir(parents=True, exist_ok=True)
        maximize = cfg.study.objective_goal == "maximize"
        self.checkpoints = CheckpointManager(
            self.layout, cfg.checkpoint.save_only_best, cfg.checkpoint.keep_best,
            maximize=maximize, warn=self.console.warn)
        recovered = recovery.recover(self.study, self.storage, cfg.study.max_retry)
        self._clean_leftovers()
        remaining = cfg.study.max_trials - len(self.study.get_trials(states=finished_states()))
        self.console.sweep_started(self.backbone, self.study_name, resumed,
                                   cfg.study.max_trials - remaining, cfg.study.max_trials,
                                   maximize=maximize)
        for trial in recovered:
            self.console.info(f"trial {trial.number} did not finish (its process died): "
                              "retrying it with the same parameters")
        with self.checkpoints.lock():  # workers starting together create one parent run
            stored = self.study.user_attrs.get(PARENT_RUN_ATTR)
            parent = self.tracker.start_sweep(
                self.study_name, self.backbone, self._parent_params(resumed), stored,
                self.loaded.unresolved_yaml, nothing_to_run=remaining <= 0)
            if parent is not None and parent != stored:
                self.study.set_user_attr(PARENT_RUN_ATTR, parent)
        self.tracker.reconcile_runs(
            {t.number: (t.state.name, t.params) for t in self.study.get_trials(deepcopy=False)})
        try:
            if remaining > 0:
                timeout = cfg.study.timeout_minutes
                self.study.optimize(
                    self._objective, n_trials=remaining, catch=(Exception,),
                    timeout=timeout * 60 if timeout else None,
                    # Trials other workers are running count too: no worker starts a trial
                    # the study no longer needs (no overshoot of one trial per worker).
                    callbacks=[optuna.study.MaxTrialsCallback(
                        cfg.study.max_trials,
                        states=(*finished_states(), optuna.trial.TrialState.RUNNING)),
                        self._after_trial],
                )
        except KeyboardInterrupt:
            self.tracker.abort_sweep()
            raise
        with self.checkpoints.lock():
            result = self._result(resumed)
            if self._others_running():
                self.console.info(f"{self.backbone}: other workers are still running trials; "
                                  "the last one to finish logs the final results")
            else:
                if result.n_complete + result.n_pruned >= cfg.study.max_trials:
                    self._remove_resume_dirs(keep_live=False)
                self._finish_tracking(result)
        self.console.sweep_finished(result)
        return result

    def _others_running(self) -> bool:
        """Whether another process still runs a trial of this study (its heartbeat, where
        the storage has one, is checked first: a dead worker's trial does not count)."""
        import optuna

        if getattr(self.storage, "heartbeat_interval", None):
            optuna.storages.fail_stale_trials(self.study)
        running = self.study.get_trials(deepcopy=False,
                                        states=(optuna.trial.TrialState.RUNNING,))
        return bool(running)

    # ------------------------------------------------------------ one trial

    def _objective(self, trial: Any) -> float:
        import optuna

        assert self.checkpoints is not None and self.layout is not None
        number = trial.number
        run_id: str | None = None
        resume: TrialResume | None = None
        try:
            if self._not_needed(number):
                self.study.stop()
                raise TrialFailed("not run: other workers' trials already make max_trials")
            params = suggest(trial, self.cfg.search_space)
            retried_from = trial.user_attrs.get(RETRIED_FROM_ATTR)
            run_id = self.tracker.start_trial(number, params, retried_from)
            trial.set_user_attr(TRIAL_ATTR, {"owner": recovery.owner_identity(),
                                             "mlflow_run_id": run_id})
            self.console.trial_started(number, params, retried_from)
            resume = TrialResume(self.layout, recovery.root_trial(trial))
            self._step_offset = 0
            completed = resume.completed_folds()
            fold_metrics = [completed.get(i) or self._run_fold(trial, params, i, run_id, resume)
                            for i in range(len(self.folds))]
            mean = _mean(fold_metrics)
            value = mean[self.cfg.study.objective_metric]
            if len(fold_metrics) > 1:
                trial.set_user_attr(FOLD_VALUES_ATTR,
                                    [m[self.cfg.study.objective_metric] for m in fold_metrics])
            self.checkpoints.trial_valued(number, self._metadata(number, params, mean,
                                                                 self.folds[-1].fold, value))
            self.tracker.end_run(run_id, "COMPLETE",
                                 metrics={**mean, **_per_fold(fold_metrics, self.folds)})
            resume.remove()
            return value
        except Pruned as exc:
            trial.set_user_attr(PRUNE_REASON_ATTR, str(exc))
            self._end_trial(number, run_id, "PRUNED", str(exc), resume)
            raise optuna.TrialPruned(str(exc)) from None
        except KeyboardInterrupt:
            trial.set_user_attr(FAIL_REASON_ATTR, "interrupted")
            # Queued now, by the only process that knows: the next run or another worker
            # continues it from its resume state.
            recovery.retry_trial(self.study, self.storage.get_trial(trial._trial_id),
                                 self.cfg.study.max_retry)
            self._end_trial(number, run_id, "KILLED", "interrupted", resume=None)
            self.console.trial_finished(number, "FAIL", None, reason="interrupted")
            raise
        except Exception as exc:
            reason = str(exc) if isinstance(exc, TrialFailed) else (
                f"{type(exc).__name__}: {first_line(exc)}")
            trial.set_user_attr(FAIL_REASON_ATTR, reason)
            self._end_trial(number, run_id, "FAIL", reason, resume)
            self.console.debug_exception(exc)
            raise TrialFailed(reason) from exc

    def _not_needed(self, number: int) -> bool:
        """Whether finished trials and older running ones (of any worker) already make
        ``max_trials``: trial numbers are handed out atomically, so the older one runs and
        the study ends with exactly ``max_trials`` finished trials. Only trial numbers at
        or past ``max_trials`` can be surplus, so the usual case costs no query."""
        import optuna

        if number < self.cfg.study.max_trials:
            return False
        states = (*finished_states(), optuna.trial.TrialState.RUNNING)
        taken = [t for t in self.study.get_trials(deepcopy=False, states=states)
                 if t.state != optuna.trial.TrialState.RUNNING or t.number < number]
        return len(taken) >= self.cfg.study.max_trials

    def _run_fold(self, trial: Any, params: dict[str, Any], index: int,
                  run_id: str | None, resume: TrialResume) -> dict[str, float]:
        assert self.checkpoints is not None
        fold = self.folds[index]
        number = trial.number
        last = index == len(self.folds) - 1
        target = self.checkpoints.target_for_fold(number, fold.fold, last)
        fold_run = self.tracker.start_fold(run_id, number, index) if fold.fold is not None else None
        offset = self._step_offset

        def report(value: float, step: int) -> None:
            trial.report(value, offset + step)
            self._step_offset = max(self._step_offset, offset + step + 1)
            self.console.progress(number, fold.fold, len(self.folds), step, value)
            kill_point(f"trial{number}:fold{index}:epoch{step}")

        logged_any = False

        def log_metrics(metrics: Mapping[str, float], step: int) -> None:
            nonlocal logged_any
            logged_any = True
            self.tracker.log(fold_run or run_id, metrics, step=step)

        resuming = self.cfg.train.resume_every_epochs or self.cfg.train.resume_every_steps
        ctx = TrialContext(
            config=self.cfg, backbone=self.backbone, trial_number=number, fold=fold.fold,
            seed=self.cfg.train.seed, objective_metric=self.cfg.study.objective_metric,
            checkpoint_dir=target, resume_dir=resume.fold_dir(index) if resuming else None,
            _report=report, _should_prune=trial.should_prune, _log_metrics=log_metrics,
            _warn=self.console.warn,
        )
        try:
            metrics = _checked_metrics(self.trainer(params, fold, ctx),
                                       self.cfg.study.objective_metric)
        except BaseException as exc:
            # isinstance: SIGTERM's Terminated is a KeyboardInterrupt too.
            state = ("PRUNED" if isinstance(exc, Pruned) else
                     "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAIL")
            self.tracker.end_run(fold_run, state)
            raise
        # A trainer that logged no per-epoch metrics gets its result logged once.
        self.tracker.end_run(fold_run, "COMPLETE", metrics=None if logged_any else metrics)
        self.checkpoints.fold_finished(number, self._metadata(number, params, metrics, fold.fold,
                                                              metrics[ctx.objective_metric]))
        if not last:  # the last fold's state stays until the trial is recorded
            resume.record_fold(index, metrics)
        return metrics

    def _end_trial(self, number: int, run_id: str | None, state: str, reason: str,
                   resume: TrialResume | None) -> None:
        assert self.checkpoints is not None
        self.checkpoints.discard(number)
        if resume is not None:
            resume.remove()
        self.tracker.end_run(run_id, state, reason)

    def _after_trial(self, study: Any, trial: Any) -> None:
        """Runs once the study has recorded the trial: the best decision, then the report."""
        assert self.checkpoints is not None
        kept = None
        try:
            if trial.state.name == "COMPLETE":
                kept = self.checkpoints.trial_finished(
                    trial.number, trial.value, lambda: self._best_other_value(trial.number))
            else:
                self.checkpoints.discard(trial.number)
        except Exception as exc:  # a callback's error would end the whole sweep
            self.console.warn(f"trial {trial.number}: checkpoint decision failed ({exc})")
        self.console.trial_finished(trial.number, trial.state.name, trial.value,
                                    reason=reason_of(trial), kept=kept)

    def _best_other_value(self, number: int) -> list[float]:
        """The study's best value if another trial holds it (one indexed query, not a scan of
        every trial). A tie with the previous best is caught by its ``best.json`` entry."""
        best = self.study.best_trial
        return [] if best.number == number else [best.value]

    # ------------------------------------------------------------ leftovers of a crash

    def _clean_leftovers(self) -> None:
        """Staging dirs, resume dirs of finished trials, ``best.json`` vs the study."""
        assert self.checkpoints is not None
        trials = self.study.get_trials(deepcopy=False)
        states = {t.number: (t.state.name, t.value) for t in trials}
        self.checkpoints.recover(states, self._best_other_value)
        self._remove_resume_dirs(keep_live=True)

    def _remove_resume_dirs(self, keep_live: bool) -> None:
        """Delete resume state no RUNNING or WAITING trial (a retry) will use."""
        assert self.layout is not None
        live = {recovery.root_trial(t) for t in self.study.get_trials(deepcopy=False)
                if t.state.name in ("RUNNING", "WAITING")} if keep_live else set()
        for root in resume_roots(self.layout):
            if root not in live:
                TrialResume(self.layout, root).remove()

    # ------------------------------------------------------------ records

    def _backbone_dir(self) -> Path:
        return Path(self.cfg.output_dir) / "hpo" / backbone_slug(self.backbone)

    def _metadata(self, number: int, params: dict[str, Any], metrics: Mapping[str, float],
                  fold: int | None, objective_value: float) -> dict[str, Any]:
        return {
            "trial_number": number, "params": params, "metrics": dict(metrics), "fold": fold,
            "objective_value": objective_value,
            "backbone": self.backbone, "study_name": self.study_name,
            "objective_metric": self.cfg.study.objective_metric,
            "versions": versions(), "git_commit": git_commit(),
            "device": self._device, "created_at": timestamp(),
        }

    def _parent_params(self, resumed: bool) -> dict[str, Any]:
        cfg = self.cfg
        url = storage_url(cfg, self.study_name)
        params: dict[str, Any] = {f"search_space.{name}": describe(spec)
                                  for name, spec in cfg.search_space.items()}
        params.update(
            backbone=self.backbone, max_trials=cfg.study.max_trials, study_name=self.study_name,
            objective_metric=cfg.study.objective_metric,
            objective_goal=cfg.study.objective_goal,
            checkpoint_enabled=cfg.checkpoint.enabled,
            checkpoint_path=url.split("@")[-1] if url else "memory",
            checkpoint_storage_type=storage_kind(url), resumed_from_checkpoint=resumed,
            k_fold=cfg.k_fold.n_splits if cfg.k_fold.enabled else "off",
            save_only_best=cfg.checkpoint.save_only_best,
        )
        return params

    def _result(self, resumed: bool) -> BackboneResult:
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        result = BackboneResult(
            backbone=self.backbone, study_name=self.study_name,
            storage=storage_kind(storage_url(self.cfg, self.study_name)), resumed=resumed,
            n_trials=len(trials), n_complete=len(complete),
            n_pruned=sum(t.state == TrialState.PRUNED for t in trials),
            n_failed=sum(t.state == TrialState.FAIL for t in trials),
            max_trials=self.cfg.study.max_trials,
            objective_metric=self.cfg.study.objective_metric,
            mlflow_parent_run_id=self.tracker.parent_run_id,
            trials=[TrialRow.from_trial(t) for t in trials],
        )
        if complete:
            best = self.study.best_trial
            assert self.checkpoints is not None
            checkpoint = self.checkpoints.checkpoint_of(best.number)
            result.best_trial, result.best_value = best.number, best.value
            result.best_params = dict(best.params)
            result.checkpoint = str(checkpoint) if checkpoint else None
            result.mlflow_best_run_id = mlflow_run_of(best)
        return result

    def _finish_tracking(self, result: BackboneResult) -> None:
        """Final metrics, tags and ``best_trial_checkpoint/``, once per state of the study:
        called under the lock by the last active worker."""
        logged = {"finished": result.n_complete + result.n_pruned, "best": result.best_trial}
        if self.study.user_attrs.get(FINAL_LOGGED_ATTR) == logged:
            return  # another worker (or an earlier run) logged exactly this
        metric = self.cfg.study.objective_metric
        metrics: dict[str, float] = {"n_trials": result.n_trials,
                                     "n_completed_trials": result.n_complete}
        tags: dict[str, str] = {}
        if result.best_trial is not None:
            metrics[f"best_{metric}"] = float(result.best_value)  # type: ignore[arg-type]
            metrics.update({f"best_{k}": float(v) for k, v in result.best_params.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
            tags = {"best_trial_number": str(result.best_trial),
                    "best_trial_run_id": result.mlflow_best_run_id or ""}
        checkpoint = Path(result.checkpoint) if result.checkpoint else None
        self.tracker.log_plots(self.study)
        if result.best_trial is None:
            self.tracker.end_run(self.tracker.parent_run_id, "FAIL", "no trial completed",
                                 metrics=metrics)
        else:
            self.tracker.finish_sweep(metrics, tags, checkpoint)
        if self.tracker.enabled and self.tracker.parent_run_id is not None:
            self.study.set_user_attr(FINAL_LOGGED_ATTR, logged)


def _checked_metrics(metrics: Mapping[str, float], objective: str) -> dict[str, float]:
    if not isinstance(metrics, Mapping):
        raise TrialFailed(f"the trainer returned {type(metrics).__name__}, not a dict of metrics")
    if objective not in metrics:
        raise TrialFailed(f"the trainer's metrics have no {objective!r}: {sorted(metrics)}")
    clean = {str(k): float(v) for k, v in metrics.items()}
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
