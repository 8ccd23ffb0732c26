"""``hposweep status``: where each backbone's study stands, read without writing anything
and without importing any training library."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hposweep.checkpoints.best import BestRecord
from hposweep.checkpoints.layout import OutputLayout
from hposweep.config.schema import SweepConfig, backbone_slug, study_name_for
from hposweep.objectives.front import fill_best
from hposweep.results import (
    FINAL_ATTR,
    PARENT_RUN_ATTR,
    REPORT_STEPS_ATTR,
    RETRIED_FROM_ATTR,
    RUN_ID_ATTR,
    WARM_START_ATTR,
    StudyReport,
    TrialRow,
    owner_of,
    registered_of,
)
from hposweep.study import budget, recovery
from hposweep.study.grid import StudyGrid
from hposweep.study.samplers import STEP_KINDS
from hposweep.study.seeds import study_stream
from hposweep.study.storage import anything_stored, finished_states, make_storage, storage_kind, storage_url


@dataclass
class StudyStatus(StudyReport):
    backbone: str
    study_name: str
    storage: str
    exists: bool
    max_trials: int
    objective_metric: str
    finished: int = 0
    seconds: float = 0.0  # time spent in trials, summed
    # study.budget: {"trial_hours"/"wall_hours": {"used", "budget", "left"}} for those set
    budget: dict[str, dict[str, float]] = field(default_factory=dict)
    stopped: str | None = None  # why a run starts no further trial (a budget or stop_when)
    pending: list[str] = field(default_factory=list)  # what the next `run` resumes
    # what the study's intermediate values are (a kind of study.samplers.STEP_KINDS, in words)
    intermediate_values: str | None = None

    @property
    def remaining(self) -> int:
        return max(0, self.max_trials - self.finished)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "remaining": self.remaining}


def study_status(cfg: SweepConfig, backbone: str) -> StudyStatus:
    import optuna

    name = study_name_for(cfg, backbone)
    url = storage_url(cfg, name)
    status = StudyStatus(backbone, name, storage_kind(url), False, cfg.study.max_trials,
                         cfg.study.objective_metric)
    if not anything_stored(url):
        return status  # do not create a database, a file or Optuna's tables by looking
    storage = make_storage(url, reading=True)
    if name not in [s.study_name for s in storage.get_all_studies()]:
        return status
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    status.exists = True
    status.trials = [TrialRow.from_trial(t) for t in trials]
    status.finished = len([t for t in trials if t.state in finished_states()])
    status.seconds = sum(r.duration_s or 0.0 for r in status.trials)
    status.mlflow_parent_run_id = study.user_attrs.get(PARENT_RUN_ATTR)
    record = _best_record(cfg, backbone, study)
    kept = record.kept_checkpoints() if record else {}
    fill_best(status, cfg, study, kept)
    status.final = study.user_attrs.get(FINAL_ATTR)
    status.registered = registered_of(study)
    status.pending = _pending(trials)
    kind = study.user_attrs.get(REPORT_STEPS_ATTR)
    status.intermediate_values = STEP_KINDS.get(kind) if kind else None
    status.budget = _budget(cfg, trials)
    spent = budget.spent(cfg, trials)
    status.stopped = spent.message if spent else _grid_exhausted(cfg, name, trials)
    return status


def _grid_exhausted(cfg: SweepConfig, name: str, trials: list[Any]) -> str | None:
    """With the grid sampler: why a run would start no trial once every point is held."""
    if cfg.study.sampler.name != "grid":
        return None
    grid = StudyGrid(cfg, study_stream(name, trials))
    return grid.exhausted_message() if grid.next_point(trials) is None else None


def _budget(cfg: SweepConfig, trials: list[Any]) -> dict[str, dict[str, float]]:
    used = budget.usage(trials)
    return {name: {"used": getattr(used, name), "budget": limit,
                   "left": max(0.0, limit - getattr(used, name))}
            for name in ("trial_hours", "wall_hours")
            if (limit := getattr(cfg.study.budget, name)) is not None}


def _best_record(cfg: SweepConfig, backbone: str, study: Any) -> BestRecord | None:
    """The study's ``best.json``, read-only (None before the study has a sweep id)."""
    run_id = study.user_attrs.get(RUN_ID_ATTR)
    if run_id is None:
        return None
    return BestRecord(OutputLayout.of(cfg.output_dir).checkpoints(backbone_slug(backbone), run_id))


def _pending(trials: list[Any]) -> list[str]:
    pending = []
    for t in trials:
        owner = owner_of(t)
        if t.state.name == "RUNNING" and recovery.owner_is_gone(owner):
            pending.append(f"trial {t.number}: its process died; the next run retries it")
        elif t.state.name == "RUNNING":
            pending.append(f"trial {t.number}: running (pid {owner.get('pid', '?')} on "
                           f"{owner.get('host', '?')})")
        elif t.state.name == "WAITING" and RETRIED_FROM_ATTR in t.user_attrs:
            pending.append(f"trial {t.number}: queued retry of trial "
                           f"{recovery.root_trial(t)} (continues from its saved state)")
        elif t.state.name == "WAITING":
            source = t.user_attrs.get(WARM_START_ATTR, {}).get("source", "enqueue")
            pending.append(f"trial {t.number}: queued parameter set ({source}), runs next")
    return pending
