"""What a finished (or resumed-and-finished) sweep reports, per backbone."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Names of the attributes the sweep stores on the study and its trials.
FAIL_REASON_ATTR = "fail_reason"
PRUNE_REASON_ATTR = "prune_reason"
RETRIED_FROM_ATTR = "retried_from"
FOLD_VALUES_ATTR = "fold_values"
BEST_EPOCH_ATTR = "hposweep.best_epoch"  # the mean over folds of the best epoch (from 0)
FINAL_ATTR = "hposweep.final"  # the final stage's record (final.refit): see sweep/final.py
# The version of mlflow.register_model that holds the model the study ships, as last
# registered (or found registered): {name, version, source, checkpoint_sha256}
REGISTERED_ATTR = "hposweep.registered"
WARM_START_ATTR = "hposweep.warm_start"  # {source, from_trial}: a trial enqueued or warm-started
PARENT_RUN_ATTR = "hposweep.mlflow_parent_run_id"
FINAL_LOGGED_ATTR = "hposweep.final_logged"  # what the last worker logged: never twice
# One record per trial: who runs it (written as the trial is created) and its MLflow run.
TRIAL_ATTR = "hposweep.trial"
GRID_POINT_ATTR = "hposweep.grid_point"  # the grid sampler's point, recorded as the trial is created

# Study user attributes, fixed for the study's life.
RUN_ID_ATTR = "hposweep.run_id"  # the sweep id in checkpoint dir names
OBJECTIVE_ATTR = "hposweep.objective"  # what a trial's value means
REPORT_STEPS_ATTR = "hposweep.report_steps"  # what an intermediate value's step is
# The finished trials of the studies this one was warm-started from, as the sampler's
# prior: {warm-start key: {"source", "trials": [{"number", "params", "value"}]}}.
WARM_START_PRIOR_ATTR = "hposweep.warm_start_prior"


def owner_of(trial: Any) -> dict[str, Any]:
    return dict(trial.user_attrs.get(TRIAL_ATTR, {}).get("owner") or {})


def mlflow_run_of(trial: Any) -> str | None:
    return trial.user_attrs.get(TRIAL_ATTR, {}).get("mlflow_run_id")


@dataclass
class TrialRow:
    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    duration_s: float | None
    reason: str | None = None
    retried_from: int | None = None
    values: list[float] | None = None  # every objective's, with several objectives
    origin: str | None = None  # an enqueued or warm-started trial: where its params came from
    unmet: list[str] = field(default_factory=list)  # the study.constraints it does not meet

    @classmethod
    def from_trial(cls, trial: Any) -> TrialRow:
        """From an Optuna ``FrozenTrial``; ``value`` is the first objective's."""
        duration = trial.duration.total_seconds() if trial.duration else None
        values = trial.values
        queued = trial.user_attrs.get(WARM_START_ATTR)
        return cls(trial.number, trial.state.name, values[0] if values else None,
                   dict(trial.params), duration, reason_of(trial),
                   trial.user_attrs.get(RETRIED_FROM_ATTR),
                   list(values) if values and len(values) > 1 else None,
                   f"queued from {origin(queued['source'], queued['from_trial'])}" if queued
                   else None,
                   [key for key, violation in (trial.constraints or {}).items() if violation > 0])


ENQUEUE_SOURCE = "enqueue"  # a WARM_START_ATTR source: an entry of study.enqueue


def origin(source: str, from_trial: int | None) -> str:
    """Where an enqueued or warm-started trial's parameters come from, in the user's words:
    ``study.enqueue[0]``, or ``trial 3 of 'other_study'``."""
    if source == ENQUEUE_SOURCE:
        return f"study.enqueue[{from_trial}]"
    return f"trial {from_trial} of {source.removeprefix('study:')!r}"


def registered_of(study: Any) -> dict[str, str] | None:
    """The registered version the study records (``REGISTERED_ATTR``), as reports show it."""
    record = study.user_attrs.get(REGISTERED_ATTR)
    if not record:
        return None
    return {key: str(record[key]) for key in ("name", "version", "source")}


def reason_of(trial: Any) -> str | None:
    """Why a trial failed or was pruned, as the sweep recorded it."""
    return trial.user_attrs.get(FAIL_REASON_ATTR) or trial.user_attrs.get(PRUNE_REASON_ATTR)


@dataclass(kw_only=True)
class StudyReport:
    """What ``run``'s result and ``status`` both report of a study: its trials and its best
    (filled by :func:`hposweep.objectives.front.fill_best`)."""

    best_trial: int | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_fold_values: list[float] = field(default_factory=list)
    checkpoint: str | None = None
    mlflow_parent_run_id: str | None = None
    mlflow_best_run_id: str | None = None
    trials: list[TrialRow] = field(default_factory=list)
    objectives: list[str] = field(default_factory=list)  # with a Pareto front: its metrics
    front: list[Any] = field(default_factory=list)  # FrontMember's; the best is its knee
    # The final model (final.refit): trial, epochs, train_examples, test_metrics, cv_value,
    # checkpoint, mlflow_run_id, test_sha256 (None: no final stage has finished)
    final: dict[str, Any] | None = None
    # mlflow.register_model: the version that holds the model the study ships, {name,
    # version, source ("final" or "best")}; None: none registered
    registered: dict[str, str] | None = None


@dataclass
class BackboneResult(StudyReport):
    backbone: str
    study_name: str
    storage: str
    resumed: bool
    # why this process started no more trials: max_trials, grid_exhausted, timeout,
    # max_failures, or (hposweep.study.budget) trial_hours, wall_hours, no_improvement
    stopped: str
    stop_message: str
    n_trials: int
    n_complete: int
    n_pruned: int
    n_failed: int
    max_trials: int
    objective_metric: str
    final_error: str | None = None  # why the final stage failed (the backbone exits 1)
    # k-fold without final.refit: the command that refits the best trial on all the data
    refit_command: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
