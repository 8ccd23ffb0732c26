"""The sweep: per backbone, an Optuna study whose objective trains every fold.

Data flows one way: the CLI hands a validated config here; this module drives the
study, the trainer, the checkpoint manager and the tracker, and tells the console.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hposweep import interrupts
from hposweep._testing.faults import barrier_point
from hposweep.api import FoldData, TrainFn
from hposweep.checkpoints.layout import OutputLayout
from hposweep.checkpoints.manager import CheckpointManager, FrontCheckpointManager
from hposweep.checkpoints.metadata import CheckpointMetadata
from hposweep.checkpoints.provenance import git_commit, timestamp, versions
from hposweep.checkpoints.resume import TrialResume, resume_roots
from hposweep.config.schema import BUILTIN_TRAINER, LoadedConfig, SweepConfig, backbone_slug, study_name_for
from hposweep.console.live import LiveConsole
from hposweep.data.readers import SweepData, build_folds, load_data
from hposweep.errors import UserError, reported_os_errors
from hposweep.objectives.front import best_and_front, fill_best, front_values
from hposweep.objectives.spec import objectives_of, uses_front
from hposweep.results import (
    FINAL_ATTR,
    PARENT_RUN_ATTR,
    REGISTERED_ATTR,
    BackboneResult,
    StudyReport,
    TrialRow,
    reason_of,
    registered_of,
)
from hposweep.study import recovery
from hposweep.study.loop import Stop, TrialLoop, heartbeat_interval
from hposweep.study.notes import has_note, write_figures, write_study_note, write_trial_note
from hposweep.study.open import OpenStudy, open_study, study_lock
from hposweep.study.samplers import raw_steps_notice
from hposweep.study.storage import finished_states, redact_url, storage_kind, storage_url, study_exists
from hposweep.study.warm_start import queue_first_trials
from hposweep.sweep.final import FinalOutcome, FinalStage, final_checkpoint
from hposweep.sweep.notes import study_note, trial_note
from hposweep.sweep.trial import TrialEnv, TrialRun
from hposweep.tracking.registry import IDENTITY_KEY, checkpoint_identity
from hposweep.tracking.tracker import SweepTracker, preload_mlflow
from hposweep.training.device import describe_device, freeze_survivors, release_memory, resolve_device
from hposweep.training.loader import load_trainer


@dataclass(frozen=True)
class Prepared:
    """What every backbone's sweep (or refit) of one config shares: read and checked once."""

    trainer: TrainFn
    data: SweepData
    folds: list[FoldData]


def prepare(cfg: SweepConfig, console: LiveConsole) -> Prepared:
    """The trainer, the data and its folds, each backbone checked (device, precision, model):
    bad input raises before any study is opened, for ``run`` and ``refit`` alike."""
    quiet_libraries()
    trainer = load_trainer(cfg.train.trainer)
    if cfg.k_fold.enabled and cfg.data.validation is not None:
        console.warn("data.validation is ignored: k-fold splits data.train "
                     "(k_fold.enabled=false uses the validation file)")
    data = load_data(cfg)
    folds = build_folds(cfg, data)
    if cfg.train.trainer == BUILTIN_TRAINER:
        from hposweep.training.model import check_backbone

        for backbone in cfg.backbones:
            check_backbone(cfg, backbone)
    return Prepared(trainer, data, folds)


def run(loaded: LoadedConfig, console: LiveConsole, fresh: bool = False) -> list[BackboneResult]:
    """Run (or resume) the sweep of every backbone. Bad input raises before any trial."""
    prepared = prepare(loaded.config, console)
    return [sweep_backbone(loaded, backbone, prepared, console, fresh)
            for backbone in loaded.config.backbones]


def archive_studies(cfg: SweepConfig, console: LiveConsole, backbones: list[str]) -> None:
    """``--fresh``: move the study dirs aside (never deleted) and say where they went."""
    from hposweep.study.open import archive_study

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
    # Our trial loop keeps the heartbeat itself (hposweep.study.loop), as study.optimize would.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="seqeval")


def sweep_backbone(loaded: LoadedConfig, backbone: str, prepared: Prepared,
                   console: LiveConsole, fresh: bool) -> BackboneResult:
    """Set the backbone's sweep up once (under the study lock), then run its trials."""
    cfg = loaded.config
    if fresh:
        archive_studies(cfg, console, [backbone])
    preload_mlflow(cfg)
    barrier_point("setup")
    with locked_sweep(loaded, backbone, prepared, console, "cannot set the sweep up") as sweep:
        sweep.set_up()
    return sweep.run()


@contextlib.contextmanager
def locked_sweep(loaded: LoadedConfig, backbone: str, prepared: Prepared, console: LiveConsole,
                 failing: str) -> Iterator[BackboneSweep]:
    """The backbone's sweep, its study opened under the study lock, which the block holds;
    a file-system error is one line, ``failing: ...`` (exit 2)."""
    cfg = loaded.config
    name = study_name_for(cfg, backbone)
    with reported_os_errors(failing):
        lock = study_lock(cfg, name, console.info)
        with lock:
            yield BackboneSweep(loaded, backbone, open_study(cfg, name), prepared, console, lock)


def refit(loaded: LoadedConfig, console: LiveConsole, force: bool) -> dict[str, FinalOutcome]:
    """``hposweep refit``: each backbone's final stage, under its study's lock (never beside
    a sweep's final logging). A study that does not exist, or whose trials still run, is
    refused (exit 2)."""
    cfg = loaded.config
    for backbone in cfg.backbones:  # before any data is read: a missing study is exit 2 at once
        name = study_name_for(cfg, backbone)
        if not study_exists(cfg, name):
            raise UserError(f"{backbone}: no study {name!r} in "
                            f"{redact_url(storage_url(cfg, name))}: `hposweep run` makes it")
    prepared = prepare(cfg, console)
    preload_mlflow(cfg)
    outcomes = {}
    for backbone in cfg.backbones:
        with locked_sweep(loaded, backbone, prepared, console, "cannot refit") as sweep:
            outcomes[backbone] = sweep.refit(force)
    return outcomes


class BackboneSweep:
    """One backbone: one study, one MLflow parent run, one best checkpoint, a final model.
    Made and :meth:`set_up` under the study lock (``lock``); :meth:`run` then runs the
    trials (or :meth:`refit` runs the final stage of the study as it stands)."""

    def __init__(self, loaded: LoadedConfig, backbone: str, opened: OpenStudy,
                 prepared: Prepared, console: LiveConsole, lock: Any) -> None:
        cfg = loaded.config
        self.loaded = loaded
        self.cfg = cfg
        self.backbone = backbone
        self.opened = opened
        self.study = opened.study
        self.study_name = opened.study.study_name
        self.console = console
        self.lock = lock
        self.maximize = cfg.study.objective_goal == "maximize"
        self.tracker = SweepTracker(cfg, self.study_name, backbone, console.warn)
        self.layout = OutputLayout.of(cfg.output_dir).checkpoints(backbone_slug(backbone), opened.run_id)
        self.layout.root.mkdir(parents=True, exist_ok=True)
        self.objectives = objectives_of(cfg)
        self.front = uses_front(cfg)  # several objectives or constraints: a Pareto front
        self.checkpoints = (FrontCheckpointManager(
            self.layout, cfg.checkpoint.save_only_best, cfg.checkpoint.keep_best,
            [o.maximize for o in self.objectives], console.warn,
            front=lambda: front_values(self.study)) if self.front else CheckpointManager(
            self.layout, cfg.checkpoint.save_only_best, cfg.checkpoint.keep_best,
            maximize=self.maximize, warn=console.warn))
        self.env = TrialEnv(cfg, backbone, opened, prepared.folds, prepared.trainer, self.layout,
                            self.checkpoints, self.tracker, console, self._metadata,
                            self._trial_device)
        self.final = FinalStage(self.env, prepared.data, self.study, self._metadata)

    @functools.cached_property
    def _device(self) -> str:
        """Recorded in checkpoint metadata; resolved once (asking CUDA costs ms) and only
        when a checkpoint is sealed."""
        return resolve_device(self.cfg.train.device)

    @functools.cached_property
    def _device_record(self) -> dict[str, str]:
        return {k: str(v) for k, v in describe_device(self._device).items()}

    def _trial_device(self) -> dict[str, str]:
        """What each trial records of its device: the built-in trainer's (a custom trainer's
        device is its own, and asking for it would load torch into a process without it)."""
        return self._device_record if self.cfg.train.trainer == BUILTIN_TRAINER else {}

    def set_up(self) -> None:
        """Under the study lock: dead trials retried, leftovers cleaned, the one MLflow
        parent run found or created. Decided once for every process of the study."""
        cfg, study = self.cfg, self.study
        recovered = recovery.recover(self.opened, cfg.study.max_retry)
        self._clean_leftovers()
        finished = self._n_finished()
        self.console.sweep_started(self.backbone, self.study_name, self.opened.resumed,
                                   finished, cfg.study.max_trials, maximize=self.maximize,
                                   front=len(objectives_of(cfg)) > 1)
        for trial in recovered:
            self._say_recovered(trial)
        notice = raw_steps_notice(cfg, self.study_name, self.opened.report_steps)
        if notice:
            self.console.warn(notice)
        queue_first_trials(cfg, self.opened, self.console.info, self.console.warn)
        stored = study.user_attrs.get(PARENT_RUN_ATTR)
        parent = self.tracker.start_sweep(
            self.opened.run_id, stored, self.loaded.unresolved_yaml, resumed=self.opened.resumed,
            nothing_to_run=finished >= cfg.study.max_trials,
            dashboard=self.loaded.command("dashboard"))
        if parent is not None and parent != stored:
            study.set_user_attr(PARENT_RUN_ATTR, parent)
        self._reconcile_runs()
        self._write_notes()

    def refit(self, force: bool) -> FinalOutcome:
        """``hposweep refit``, under the study lock: the final stage of the study as it
        stands, logged under its parent run (which stays as it is)."""
        if self._others_running():
            raise UserError(f"{self.backbone}: trials of study {self.study_name!r} are still "
                            "running; the last worker runs the final stage when they end")
        self.tracker.attach(self.study.user_attrs.get(PARENT_RUN_ATTR))
        report = StudyReport()
        fill_best(report, self.cfg, self.study, self.checkpoints.kept_checkpoints())
        outcome = self.final.run(report, force=force)
        if outcome.checkpoint is not None:
            self._register_model(outcome.checkpoint)
        outcome.registered = registered_of(self.study)
        self._write_study_note()
        return outcome

    def run(self) -> BackboneResult:
        loop = TrialLoop(self.cfg, self.opened, self.lock,
                         run_trial=self._run_trial,
                         after_trial=self._after_trial, on_recovered=self._say_recovered,
                         on_lost=self._say_lost)
        try:
            stop = loop.run()
            # Recovered whatever the stop: a dead trial must not look like a live worker's.
            while self._recovered_at_the_end() and stop.study_done:
                stop = loop.run()  # a worker died after our last admission: run its retry
        except KeyboardInterrupt:
            interrupts.received()
            self.tracker.abort_sweep()
            raise
        barrier_point("finish")  # a test makes workers end together here
        with reported_os_errors("cannot finish the sweep"), self.lock:
            result = self._result(stop)
            if self._others_running():
                self.console.info(f"{self.backbone}: other workers are still running trials; "
                                  "the last one to finish logs the final results")
            else:
                finished = result.n_complete + result.n_pruned
                if stop.reason == "grid_exhausted" or finished >= self.cfg.study.max_trials:
                    self._remove_resume_dirs(keep_live=False)
                self._reconcile_runs()
                self.tracker.log_final(result, self.study)
                if self.cfg.final.refit and result.best_trial is not None and stop.study_ended:
                    outcome = self.final.run(result)
                    result.final_error = outcome.error
                result.final = self.study.user_attrs.get(FINAL_ATTR)
                if result.best_trial is not None:
                    self._register_model(self._shipped_model(result))
                result.registered = registered_of(self.study)
                self._write_study_note()
                self._write_figures(result)
        if self.cfg.k_fold.enabled and not self.cfg.final.refit:
            result.refit_command = self.loaded.command("refit")
        self.console.sweep_finished(result)
        return result

    def _shipped_model(self, result: BackboneResult) -> Path | None:
        """The model the sweep hands over: the final model if there is one, else the best
        trial's checkpoint."""
        return final_checkpoint(self.layout) or (Path(result.checkpoint) if result.checkpoint
                                                 else None)

    def _register_model(self, checkpoint: Path | None) -> None:
        """``mlflow.register_model``: ``checkpoint`` as a version, once (say when it is new),
        recorded on the study (``REGISTERED_ATTR``: what ``best`` and ``status`` show). When
        none is registered (MLflow unreachable or failing, the key unset) the record stays if
        it is of this checkpoint, else it is dropped: no record names another model's version."""
        registered = self.tracker.register_model(checkpoint)
        if registered is not None and registered.new:
            self.console.info(f"{self.backbone}: {checkpoint} registered in MLflow as version "
                              f"{registered.version} of {registered.name!r}")
        stored = self.study.user_attrs.get(REGISTERED_ATTR)
        if registered is not None:
            record = registered.record()
        elif stored and checkpoint is not None and (
                stored.get(IDENTITY_KEY) == self._identity(checkpoint)):
            record = stored
        else:
            record = None
        if record != stored:
            self.study.set_user_attr(REGISTERED_ATTR, record)

    def _identity(self, checkpoint: Path) -> str | None:
        try:
            return checkpoint_identity(checkpoint)
        except OSError:
            return None

    def _run_trial(self, trial: Any) -> Any:
        outcome = TrialRun(self.env, trial).run()
        release_memory()  # the finished trial's model: its cached GPU blocks go back
        freeze_survivors()
        return outcome

    def _recovered_at_the_end(self) -> bool:
        """Whether a trial of a process that died after this one's last admission was just
        failed and queued again (the study would otherwise end one trial short)."""
        with self.lock:
            recovered = recovery.recover(self.opened, self.cfg.study.max_retry)
        for trial in recovered:
            self._say_recovered(trial)
        return bool(recovered)

    def _say_recovered(self, trial: Any) -> None:
        self.console.info(f"trial {trial.number} did not finish (its process died): "
                          "retrying it with the same parameters")

    def _say_lost(self, trial: Any) -> None:
        self.checkpoints.discard(trial.number)
        self.console.warn(f"trial {trial.number} was failed by another worker while it ran (its "
                          "heartbeat was missed for study.grace_period); its result is dropped "
                          "and its retry runs it again")

    def _n_finished(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=finished_states()))

    def _others_running(self) -> bool:
        """Whether another process still runs a trial of this study (its heartbeat, where
        the storage has one, is checked first; same-host dead trials were recovered by
        :meth:`_recovered_at_the_end`: a dead worker's trial does not count)."""
        import optuna

        if heartbeat_interval(self.opened.storage):
            optuna.storages.fail_stale_trials(self.study)
        running = self.study.get_trials(deepcopy=False,
                                        states=(optuna.trial.TrialState.RUNNING,))
        return bool(running)

    def _reconcile_runs(self) -> None:
        self.tracker.reconcile_runs(
            {t.number: (t.state.name, t.params) for t in self.study.get_trials(deepcopy=False)})

    def _after_trial(self, trial: Any) -> None:
        """Once the study has recorded the trial: the best decision, then the report."""
        kept = None
        if trial.state.name == "COMPLETE":
            kept = self.checkpoints.trial_finished(
                trial.number, self._value(trial), lambda: self._best_other_value(trial.number))
        else:
            self.checkpoints.discard(trial.number)
        if kept:  # the few trials that kept a checkpoint get a note (the others: user attrs)
            write_trial_note(self.opened.storage, self.opened.study_id,
                             self.opened.trial_id(trial.number),
                             trial_note(trial, kept, self.tracker.run_link))
        self.console.trial_finished(trial.number, trial.state.name,
                                    trial.values[0] if trial.values else None,
                                    reason=reason_of(trial), kept=kept)

    def _best_other_value(self, number: int) -> list[float]:
        """The study's best value if another trial holds it (one indexed query, not a scan of
        every trial). A tie with the previous best is caught by its ``best.json`` entry."""
        best = self.study.best_trial
        return [] if best.number == number else [best.value]

    def _value(self, trial: Any) -> Any:
        """What the checkpoint rule compares: the value, or with a front every objective's."""
        if self.front:
            return tuple(trial.values) if trial.values else None
        return trial.value

    # ------------------------------------------------------------ notes for viewers

    def _write_notes(self) -> None:
        """Under the study lock: the study's note, and the note of each trial that holds a
        kept checkpoint and has none (a study made before such notes, or a trial whose
        process died between recording it and writing its note). Every other fact about a
        trial is in its user attributes, written as it ran; notes of every trial left by
        earlier versions stay (Optuna cannot delete a study attribute)."""
        kept = self.checkpoints.kept_checkpoints()
        if kept:
            written = self.opened.storage.get_study_system_attrs(self.opened.study_id)
            for number, path in kept.items():
                trial_id = self.opened.trial_id(number)
                if not has_note(written, trial_id):
                    write_trial_note(self.opened.storage, self.opened.study_id, trial_id,
                                     trial_note(self.opened.storage.get_trial(trial_id), path,
                                                self.tracker.run_link))
        self._write_study_note()

    def _write_study_note(self) -> None:
        kept = self.checkpoints.kept_checkpoints()
        best, _ = best_and_front(self.cfg, self.study, kept)
        checkpoint = str(kept[best.number]) if best is not None and best.number in kept else None
        write_study_note(self.opened.storage, self.opened.study_id, study_note(
            self.cfg, self.study_name, self.backbone, best, checkpoint,
            self.tracker.run_link(), knee=self.front,
            final=self.study.user_attrs.get(FINAL_ATTR)))

    def _write_figures(self, result: BackboneResult) -> None:
        """hposweep's plots where optuna-dashboard shows them (the study's page): at the
        sweep's end, by the last worker, under the study lock; unchanged chunks are not
        written again."""
        from hposweep.reports.plots import dashboard_figures

        write_figures(self.opened.storage, self.opened.study_id,
                      dashboard_figures(self.study, self.cfg, result.front))

    # ------------------------------------------------------------ leftovers of a crash

    def _clean_leftovers(self) -> None:
        """Staging dirs, resume dirs of finished trials, ``best.json`` vs the study."""
        trials = self.study.get_trials(deepcopy=False)
        states = {t.number: (t.state.name, self._value(t)) for t in trials}
        self.checkpoints.recover(states, self._best_other_value)
        self._remove_resume_dirs(keep_live=True)

    def _remove_resume_dirs(self, keep_live: bool) -> None:
        """Delete resume state no RUNNING or WAITING trial (a retry) will use."""
        live = {recovery.root_trial(t) for t in self.study.get_trials(deepcopy=False)
                if t.state.name in ("RUNNING", "WAITING")} if keep_live else set()
        for root in resume_roots(self.layout):
            if root not in live:
                TrialResume(self.layout, root, self.console.warn).remove()

    # ------------------------------------------------------------ records

    def _metadata(self, number: int, params: dict[str, Any], metrics: Mapping[str, float],
                  fold: int | None, objective_value: float) -> CheckpointMetadata:
        data = self.env.folds[fold or 0]  # what this model was trained and validated on
        return CheckpointMetadata(
            trial_number=number, params=params, metrics=dict(metrics), fold=fold,
            n_folds=len(self.env.folds) if fold is not None else None,
            train_examples=len(data.train), validation_examples=len(data.validation),
            objective_value=objective_value, backbone=self.backbone, study_name=self.study_name,
            objective_metric=self.cfg.study.objective_metric, device=self._device,
            created_at=timestamp(), git_commit=git_commit(), versions=versions())

    def _result(self, stop: Stop) -> BackboneResult:
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        result = BackboneResult(
            backbone=self.backbone, study_name=self.study_name,
            storage=storage_kind(storage_url(self.cfg, self.study_name)),
            resumed=self.opened.resumed, stopped=stop.reason, stop_message=stop.message,
            n_trials=len(trials), n_complete=len(complete),
            n_pruned=sum(t.state == TrialState.PRUNED for t in trials),
            n_failed=sum(t.state == TrialState.FAIL for t in trials),
            max_trials=self.cfg.study.max_trials,
            objective_metric=self.cfg.study.objective_metric,
            mlflow_parent_run_id=self.tracker.parent_run_id,
            trials=[TrialRow.from_trial(t) for t in trials],
        )
        fill_best(result, self.cfg, self.study, self.checkpoints.kept_checkpoints())
        return result
