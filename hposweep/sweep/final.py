"""The final stage (``final.refit``): the chosen trial's hyperparameters trained once on all
the training data, then scored once on the test set, which nothing else reads.

It runs in the process that does a backbone's final logging (the last worker, under the
study lock: once across ``--workers`` and machines), and in ``hposweep refit``. Like a
trial it goes through the trainer (:func:`hposweep.sweep.trial.call_trainer`), saves
resume state (``final_{run_id}/resume/``: a kill -9 is continued by the next run), and
writes its checkpoint into a staging dir that is sealed (``hposweep.json``) and renamed
into ``final_{run_id}/checkpoint/``. A failure is a warning and exit code 1 for the
backbone; the study is never touched but for its record (``FINAL_ATTR``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from hposweep import interrupts
from hposweep._testing.faults import kill_point
from hposweep.api import Example, FoldData, Pruned, TrialContext, TrialFailed
from hposweep.checkpoints.files import remove_tree, write_json_atomic
from hposweep.checkpoints.layout import CheckpointLayout
from hposweep.checkpoints.metadata import CheckpointMetadata
from hposweep.checkpoints.provenance import git_commit, timestamp, versions
from hposweep.config.schema import SweepConfig
from hposweep.data.readers import SweepData, final_training_data, load_test
from hposweep.errors import DeviceFailed, InternalError, UserError, first_line
from hposweep.objectives.spec import objectives_of
from hposweep.results import BEST_EPOCH_ATTR, FINAL_ATTR, StudyReport
from hposweep.study.space import epochs_of
from hposweep.sweep.trial import TrialEnv, call_trainer, checked_metrics, ours

PLAN_FILE = "plan.json"  # in the resume dir: what the saved state is a refit of


@dataclass
class FinalOutcome:
    """What one final stage did. ``trained``: this call trained a new final model (not a
    final model found done); ``error``: why it failed (the backbone exits 1)."""

    checkpoint: Path | None = None
    trial: int | None = None
    trained: bool = False
    epochs: int | None = None
    test_metrics: dict[str, float] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    error: str | None = None
    registered: dict[str, str] | None = None  # the registered version holding the model

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "checkpoint": str(self.checkpoint) if self.checkpoint else None}


def final_checkpoint(layout: CheckpointLayout) -> Path | None:
    """The backbone's sealed final checkpoint, else None."""
    meta = CheckpointMetadata.read(layout.final_checkpoint)
    return layout.final_checkpoint if meta is not None and meta.refit else None


def final_epochs(cfg: SweepConfig, trial: Any) -> int:
    """``final.epochs``: a number, or ``best``: the trial's mean best epoch over its folds
    (counted from 1, rounded half up) with ``select_epoch: best``, else its epochs."""
    if cfg.final.epochs != "best":
        return int(cfg.final.epochs)
    epochs = epochs_of(trial.params, cfg.train.epochs)
    best = trial.user_attrs.get(BEST_EPOCH_ATTR)
    if cfg.train.select_epoch != "best" or best is None:
        return epochs
    return max(1, min(epochs, math.floor(float(best) + 1 + 0.5)))


def file_sha256(examples: list[Example]) -> str:
    """The test data's content hash: of its examples as read (a file, or a dataset split)."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps([example.tokens, example.tags, example.label,
                                  example.text_pair]).encode())
    return digest.hexdigest()


def chosen_trial(cfg: SweepConfig, report: StudyReport) -> int:
    """The trial the final stage refits: the best, the knee of a front, or
    ``final.select`` (the choices of ``export --select``)."""
    if cfg.final.select is not None and report.front:
        from hposweep.objectives.front import front_choice

        # any member: a refit needs the trial's hyperparameters, not its checkpoint
        return int(front_choice(cfg, report.front, cfg.final.select, "final.select").number)
    if report.best_trial is None:
        raise UserError("no completed trial to refit")
    return report.best_trial


class FinalStage:
    """One backbone's final stage; :meth:`run` does it unless it is done."""

    def __init__(self, env: TrialEnv, data: SweepData, study: Any,
                 metadata: Callable[..., CheckpointMetadata]) -> None:
        self.env = env
        self.cfg = env.cfg
        self.data = data
        self.study = study
        self.layout = env.layout
        self.metadata = metadata  # (number, params, metrics, fold, value): the trials' record

    def run(self, report: StudyReport, force: bool = False) -> FinalOutcome:
        """Refit the chosen trial unless its final model exists (``force``: refit anyway)."""
        try:
            number = chosen_trial(self.cfg, report)
        except UserError as exc:
            return self._failed(None, str(exc))
        self._clean_leftovers()
        done = CheckpointMetadata.read(self.layout.final_checkpoint)
        if done is not None and done.refit and done.trial_number == number and not force:
            return FinalOutcome(self.layout.final_checkpoint, number, epochs=done.epochs,
                                test_metrics=done.test_metrics,
                                mlflow_run_id=(self.study.user_attrs.get(FINAL_ATTR) or {})
                                .get("mlflow_run_id"))
        trial = self.env.opened.frozen_trial(number)
        epochs = final_epochs(self.cfg, trial)
        params = {**trial.params, "epochs": epochs}
        self.env.console.info(f"{self.env.backbone}: final stage: trial {number}'s "
                              f"hyperparameters, {epochs} epoch{'s' * (epochs != 1)} on all "
                              "the training data")
        try:
            return self._refit(trial, params, epochs)
        except KeyboardInterrupt:
            interrupts.received()
            raise
        except (TrialFailed, Pruned, DeviceFailed, InternalError, UserError, OSError) as exc:
            return self._failed(number, f"{type(exc).__name__}: {first_line(exc)}"
                                if isinstance(exc, OSError) else str(exc))

    # ------------------------------------------------------------ the refit

    def _refit(self, trial: Any, params: dict[str, Any], epochs: int) -> FinalOutcome:
        env, cfg, number = self.env, self.cfg, trial.number
        train = final_training_data(cfg, self.data)
        test = load_test(cfg)  # the one place the test set is read
        data = FoldData(train, test or [], env.folds[0].labels, None)
        resume = self._resume_dir({"trial": number, "params": params})
        staging = self.layout.final_staging_dir()
        staging.mkdir(parents=True)
        run_id = env.tracker.start_final({**params, "refit_from_trial": number,
                                          "train_examples": len(train), "epochs": epochs})
        ctx = TrialContext(
            config=cfg, backbone=env.backbone, trial_number=number, fold=None,
            seed=cfg.train.seed, objective_metric=cfg.study.objective_metric,
            checkpoint_dir=staging / "checkpoint", resume_dir=resume, final=True,
            _report=ours(self._progress), _should_prune=lambda: False,
            _log_metrics=ours(lambda metrics, step: env.tracker.log(run_id, metrics,
                                                                     step=step)),
            _warn=env.console.warn)
        try:
            metrics = checked_metrics(call_trainer(env, params, data, ctx, "final stage"), [])
            if not (staging / "checkpoint").is_dir():
                raise TrialFailed("the trainer saved no model to ctx.checkpoint_dir")
            cv = self._cv_values(trial)
            meta = self.metadata(number, trial.params, metrics, None,
                                 cv.get(cfg.study.objective_metric))
            sealed = _final_metadata(meta, epochs, len(train), test, metrics)
            sealed.write(staging / "checkpoint")
            kill_point("final:sealed")
            checkpoint = self._replace(staging)
        except BaseException as exc:
            env.tracker.end_run(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt)
                                else "FAIL", None if isinstance(exc, KeyboardInterrupt)
                                else first_line(exc))
            remove_tree(staging, self.layout.root, env.console.warn)
            raise
        if resume is not None:
            remove_tree(resume.parent, self.layout.root, env.console.warn)
        test_metrics = {f"test_{k}": v for k, v in metrics.items()} if test else {}
        env.tracker.end_run(run_id, "COMPLETE", metrics={
            **test_metrics, **{f"cv_{k}": v for k, v in cv.items()}})
        env.tracker.log_final_model(checkpoint)
        record = {"trial": number, "epochs": epochs, "train_examples": len(train),
                  "test_examples": len(test) if test else 0,
                  "test_metrics": metrics if test else {}, "cv": cv,
                  "checkpoint": str(checkpoint), "mlflow_run_id": run_id,
                  "test_sha256": sealed.test_sha256}
        self.study.set_user_attr(FINAL_ATTR, record)
        env.console.info(f"{env.backbone}: final model (trial {number}, {len(train)} training "
                         f"examples) in {checkpoint}" + _scores(cfg, cv, metrics if test else {}))
        return FinalOutcome(checkpoint, number, True, epochs, metrics if test else {}, run_id)

    def _progress(self, value: float, epoch: int) -> None:
        self.env.console.info(f"{self.env.backbone}: final stage epoch {epoch + 1}: "
                              f"train loss {value:.4f}")
        kill_point(f"final:epoch{epoch}")

    def _cv_values(self, trial: Any) -> dict[str, float]:
        """The trial's cross-validation estimate of each objective (what a sweep's best
        value says), beside the test score."""
        return {o.metric: float(v) for o, v in zip(objectives_of(self.cfg), trial.values or [],
                                                   strict=False)}

    def _resume_dir(self, plan: dict[str, Any]) -> Path | None:
        """Where the trainer keeps its resume state: kept from a killed final stage of the
        same plan (trial and params), else emptied. None when resuming is off."""
        if not (self.cfg.train.resume_every_epochs or self.cfg.train.resume_every_steps):
            return None
        root = self.layout.final_resume_dir
        plan_file = root / PLAN_FILE
        try:
            same = json.loads(plan_file.read_text(encoding="utf-8")) == plan
        except (OSError, ValueError):
            same = False
        if not same:
            remove_tree(root, self.layout.root, self.env.console.warn)
            root.mkdir(parents=True)
            write_json_atomic(plan_file, plan)
        return root / "state"

    def _replace(self, staging: Path) -> Path:
        """Rename the sealed staged checkpoint into ``final_{run_id}/checkpoint/``; a final
        model already there (``refit --force``) is moved aside first, then deleted."""
        target = self.layout.final_checkpoint
        target.parent.mkdir(parents=True, exist_ok=True)
        aside = None
        if target.exists():
            aside = self.layout.final_staging_dir()
            aside.mkdir()
            os.rename(target, aside / "checkpoint")
        os.rename(staging / "checkpoint", target)
        kill_point("final:renamed")
        for path in (staging, aside):
            if path is not None:
                remove_tree(path, self.layout.root, self.env.console.warn)
        return target

    def _clean_leftovers(self) -> None:
        """Staging dirs a killed final stage left (its resume state stays)."""
        for path in self.layout.final_staging_dirs():
            remove_tree(path, self.layout.root, self.env.console.warn)

    def _failed(self, number: int | None, reason: str) -> FinalOutcome:
        self.env.console.warn(f"{self.env.backbone}: the final stage failed ({reason}); the "
                              "study is intact: `hposweep refit` (or the next run) tries again")
        return FinalOutcome(trial=number, error=reason)


def _final_metadata(meta: CheckpointMetadata, epochs: int, train_examples: int,
                    test: list[Example] | None, metrics: dict[str, float]) -> CheckpointMetadata:
    return replace(meta, refit=True, epochs=epochs, train_examples=train_examples,
                   validation_examples=0, n_folds=None, test_examples=len(test) if test else 0,
                   test_sha256=file_sha256(test) if test else None,
                   test_metrics=metrics if test else {}, created_at=timestamp(),
                   git_commit=git_commit(), versions=versions())


def _scores(cfg: SweepConfig, cv: dict[str, float], test: dict[str, float]) -> str:
    metric = cfg.study.objective_metric
    if metric not in test:
        return ""
    return f": test {metric} {test[metric]:.4f} (CV estimate {cv.get(metric, float('nan')):.4f})"

