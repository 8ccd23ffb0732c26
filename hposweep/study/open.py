"""Creating a study or opening it to resume, under the study lock every process takes."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hposweep.checkpoints.layout import OutputLayout
from hposweep.config.schema import SweepConfig
from hposweep.errors import UserError
from hposweep.objectives.spec import objectives_of
from hposweep.results import RUN_ID_ATTR, owner_of
from hposweep.study.identity import check_same_objective
from hposweep.study.samplers import make_pruner, settle_report_steps
from hposweep.study.storage import make_storage, redact_url, storage_url, study_names

LOCK_NOTICE_S = 5.0  # how long a wait for the study lock goes unmentioned


def study_lock(cfg: SweepConfig, study_name: str, on_wait: Callable[[str], None]) -> Any:
    """The lock every process of a study takes to set the sweep up, to start a trial and
    for the final logging and final stage (an OS file lock in the study dir: it dies with
    its process, so a crash never leaves it held). Under it a trial's owner is recorded
    before anyone else can look, so a RUNNING trial seen without an owner under the lock
    is one whose process died. An in-memory study (``study.persist: false``) has one
    process: no lock, no file. ``on_wait`` hears once when the lock is not free at once."""
    import contextlib

    if storage_url(cfg, study_name) is None:
        return contextlib.nullcontext()
    path = OutputLayout.of(cfg.output_dir).study_lock(study_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return StudyLock(path, on_wait)


class StudyLock:
    """Waits for as long as another process holds the lock, which only a live process can
    (its final logging uploads a checkpoint and its final stage trains a model: they take
    as long as they take), and says so once after :data:`LOCK_NOTICE_S`."""

    def __init__(self, path: Path, on_wait: Callable[[str], None]) -> None:
        from filelock import FileLock

        self.path = path
        self.on_wait = on_wait
        self._lock = FileLock(path)

    def __enter__(self) -> StudyLock:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=LOCK_NOTICE_S)
        except Timeout:
            self.on_wait(f"waiting for the study lock ({self.path}): another process of the "
                         "study holds it (a trial's admission, or its final logging or final "
                         "stage, which may take long)")
            self._lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


@dataclass(frozen=True)
class OpenStudy:
    """A study with its storage: trials are addressed by number through the storage's
    public API (no private Optuna attributes)."""

    study: Any
    storage: Any
    study_id: int
    resumed: bool  # the study had trials that no live process is running
    report_steps: str = "estimate"  # "estimate", "fold" or "epoch": see report_steps()

    @property
    def run_id(self) -> str:
        return str(self.study.user_attrs[RUN_ID_ATTR])

    def trial_id(self, number: int) -> int:
        return int(self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number))

    def frozen_trial(self, number: int) -> Any:
        return self.storage.get_trial(self.trial_id(number))


def open_study(cfg: SweepConfig, study_name: str) -> OpenStudy:
    """Create the study, or load it to resume; call under :func:`study_lock`, so that
    processes starting together agree on one sweep id and on whether it resumes."""
    import optuna

    url = storage_url(cfg, study_name)
    storage = make_storage(url, cfg)
    exists = study_name in study_names(storage, url)
    if exists and not cfg.study.resume:
        raise UserError(
            f"study {study_name!r} already exists in {redact_url(url)} and study.resume is "
            "false: run with study.resume=true to resume it, or --fresh to archive it "
            "and start again"
        )
    study = optuna.create_study(
        study_name=study_name, storage=storage, load_if_exists=True,
        directions=[o.goal for o in objectives_of(cfg)],
        sampler=optuna.samplers.RandomSampler(),  # each trial gets its own: TrialLoop._admit
    )
    if RUN_ID_ATTR not in study.user_attrs:
        study.set_user_attr(RUN_ID_ATTR, uuid.uuid4().hex[:8])
    check_same_objective(cfg, study)
    if study.metric_names is None:  # the objectives' names in plots and dashboards
        study.set_metric_names([o.metric for o in objectives_of(cfg)])
    steps = settle_report_steps(cfg, study)
    study.pruner = make_pruner(cfg, steps)
    return OpenStudy(study, storage, storage.get_study_id_from_name(study_name),
                     exists and _has_past_trials(study), steps)


def _has_past_trials(study: Any) -> bool:
    """Trials other than those that live processes run now (workers started together join
    one fresh sweep; they do not resume it)."""
    from hposweep.study.recovery import owner_is_gone

    return any(t.state.name != "RUNNING" or owner_is_gone(owner_of(t))
               for t in study.get_trials(deepcopy=False))




def archive_study(cfg: SweepConfig, study_name: str) -> Path | None:
    """``--fresh``: move the default study dir aside (never deleted). Returns the new path."""
    if cfg.study.storage:
        raise UserError("--fresh archives the default SQLite study dir only; with study.storage "
                        "set, use a new study.name instead")
    source = OutputLayout.of(cfg.output_dir).study_dir(study_name)
    if not source.exists():
        return None
    target = source.with_name(f"{study_name}.archived-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.move(str(source), str(target))
    return target
