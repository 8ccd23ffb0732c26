"""Optuna studies: storage URLs, samplers, pruners, and creating or resuming a study."""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hposweep.config import SweepConfig
from hposweep.errors import UserError, first_line
from hposweep.objectives import objectives_of
from hposweep.results import owner_of
from hposweep.space import grid

RUN_ID_ATTR = "hposweep.run_id"  # study user attribute: the sweep id in checkpoint dir names
OBJECTIVE_ATTR = "hposweep.objective"  # what a trial's value means: fixed for the study
REPORT_STEPS_ATTR = "hposweep.report_steps"  # what an intermediate value's step is: fixed too


def finished_states() -> tuple[Any, ...]:
    from optuna.trial import TrialState

    return (TrialState.COMPLETE, TrialState.PRUNED)


def study_dir(cfg: SweepConfig, study_name: str) -> Path:
    return Path(cfg.output_dir) / "hpo" / study_name


def storage_url(cfg: SweepConfig, study_name: str) -> str | None:
    """The study's storage: the configured URL, SQLite under the study dir, or None (memory)."""
    if cfg.study.storage:
        return cfg.study.storage
    if cfg.checkpoint.enabled:
        return f"sqlite:///{(study_dir(cfg, study_name) / 'study.db').resolve()}"
    return None


def storage_kind(url: str | None) -> str:
    if url is None:
        return "memory"
    if url.startswith("journal+redis://"):
        return "journal-redis"
    return url.split(":", 1)[0].split("+", 1)[0]


def make_storage(url: str | None, cfg: SweepConfig | None = None, reading: bool = False) -> Any:
    """The Optuna storage for ``url``; with ``cfg``, RDB storages get heartbeats that fail
    and retry the trials of workers that died (see :mod:`hposweep.recovery`). ``reading``:
    for the commands that only look (``status``, ``best``, ...): no table is created, no
    write lock is taken."""
    import optuna

    if url is None:
        return optuna.storages.InMemoryStorage()
    if url.startswith("journal+redis://"):
        redis_url = "redis://" + url.removeprefix("journal+redis://")
        try:
            backend = optuna.storages.journal.JournalRedisBackend(redis_url)
        except Exception as exc:  # no redis package, or no server
            raise UserError(f"study.storage: cannot open {redact_url(url)}: {first_line(exc)}") from None
        return optuna.storages.JournalStorage(backend)
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(str(path))
        return optuna.storages.JournalStorage(backend)
    if url.startswith("sqlite:///"):
        database = Path(url.removeprefix("sqlite:///"))
        if not reading:
            database.parent.mkdir(parents=True, exist_ok=True)
        _check_sqlite_file(database)
    heartbeat: dict[str, Any] = {}
    if cfg is not None and cfg.study.heartbeat_interval and not reading:
        from hposweep.recovery import heartbeat_callback

        heartbeat = {"heartbeat_interval": cfg.study.heartbeat_interval,
                     "grace_period": cfg.study.grace_period,
                     "heartbeat_stale_trial_callback": heartbeat_callback(cfg.study.max_retry)}
    for attempt in range(SCHEMA_RACE_RETRIES + 1):
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url),
                                                 skip_table_creation=reading, **heartbeat)
        except Exception as exc:
            # Workers starting together on a fresh database all create Optuna's tables; the
            # losers hit a unique constraint. Once the winner is done the tables exist.
            if attempt < SCHEMA_RACE_RETRIES and _lost_schema_race(exc):
                time.sleep(0.2 * (attempt + 1))
                continue
            raise UserError(f"study.storage: cannot open {redact_url(url)}: {first_line(exc)}") from None
        if url.startswith("sqlite") and not reading:
            _serialize_sqlite(storage.engine)
        return storage
    raise AssertionError("unreachable")


SCHEMA_RACE_RETRIES = 5


def _lost_schema_race(exc: Exception) -> bool:
    text = str(exc)
    return any(marker in text for marker in ("UniqueViolation", "UNIQUE constraint failed",
                                             "already exists", "Duplicate entry"))


def _engine_kwargs(url: str) -> dict[str, Any]:
    if not url.startswith("sqlite"):
        return {"pool_pre_ping": True}
    # Several processes on one SQLite file wait for the write lock instead of failing, and
    # the driver leaves transactions to SQLAlchemy (see _serialize_sqlite).
    return {"connect_args": {"timeout": 60, "isolation_level": None}}


def _serialize_sqlite(engine: Any) -> None:
    """Make every SQLite transaction take the write lock when it begins.

    Python's sqlite3 begins a transaction only at the first write, so Optuna's
    read-check-write steps (popping a WAITING trial, failing a RUNNING one) are not atomic
    on SQLite: measured, 4 processes asking together popped one queued trial twice in 19
    of 20 tries. ``BEGIN IMMEDIATE`` serializes them, as PostgreSQL's row locks do.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _check_sqlite_file(database: Path) -> None:
    """Refuse a study file that is not an SQLite database, or is empty: an empty one is no
    new study (ours is created whole, under the study lock) but a lost one, and starting
    afresh beside the old sweep's best checkpoint would fork the sweep."""
    if not database.exists():
        return
    if database.is_dir():
        raise UserError(f"{database}: is a directory, not the study's SQLite file; move it away")
    with database.open("rb") as handle:
        header = handle.read(16)
    if header == b"":
        raise UserError(f"{database}: the study file is empty (0 bytes): its trials are lost. Left "
                        "untouched: run with --fresh to archive it and start a new study")
    if header != b"SQLite format 3\x00":
        raise UserError(f"{database}: not an SQLite database; the study file is corrupt "
                        "(left untouched: move it away or use --fresh)")


def make_sampler(cfg: SweepConfig, trial_number: int = 0) -> Any:
    """The sampler that draws trial ``trial_number``, seeded with ``sampler.seed + trial_number``.

    A new sampler per trial (samplers keep their state in the study, not in the object):
    one process replays the same sweep from the same seed, while processes sharing a
    study never draw the same stream, because each trial number is handed out once.
    """
    import optuna

    s = cfg.study.sampler
    seed = None if s.seed is None else s.seed + trial_number
    if s.name == "grid":
        return optuna.samplers.GridSampler(grid(cfg.search_space), seed=seed)
    factories = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "gp": optuna.samplers.GPSampler,
        "nsga2": optuna.samplers.NSGAIISampler,
    }
    return factories[s.name](seed=seed)


def make_pruner(cfg: SweepConfig) -> Any:
    import optuna

    p = cfg.study.pruner
    max_resource = cfg.train.epochs * (cfg.k_fold.n_splits if cfg.k_fold.enabled else 1)
    if p.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials,
                                           n_warmup_steps=p.n_warmup_steps)
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=p.min_resource, max_resource=max_resource,
                                              reduction_factor=p.reduction_factor)
    if p.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=p.min_resource,
                                                      reduction_factor=p.reduction_factor)
    if p.name == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=p.p_threshold,
                                             n_startup_steps=p.n_startup_steps)
    return optuna.pruners.NopPruner()


def report_steps(cfg: SweepConfig, stored: str | None = None) -> str:
    """What the study's intermediate values are: ``fold`` (one fold score at step = fold
    index, for fold-level pruners) or ``epoch`` (each epoch's score at step
    ``fold * epochs + epoch``). Never both in one study: pruner ``none`` keeps the kind
    the study has (``stored``), epoch by default."""
    from hposweep.config import FOLD_PRUNERS

    if cfg.study.pruner.name == "none":
        return stored or "epoch"
    return "fold" if cfg.study.pruner.name in FOLD_PRUNERS else "epoch"


def _settle_report_steps(cfg: SweepConfig, study: Any) -> str:
    """The study's kind of steps, recorded with it. A study whose trials reported epoch
    scores cannot switch to a fold-level pruner (or back): the pruner would compare a
    fold's score with an epoch's."""
    stored = study.user_attrs.get(REPORT_STEPS_ATTR)
    wanted = report_steps(cfg, stored)
    if stored == wanted:
        return wanted
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        stored = stored or "epoch"  # studies made before it was recorded reported epochs
        if stored != wanted:
            raise UserError(
                f"study {study.study_name!r} has {stored}-step intermediate values and "
                f"study.pruner.name={cfg.study.pruner.name} reports {wanted} steps: the pruner "
                "would compare incomparable values. Keep the kind of pruner, use another "
                "study.name or --fresh")
    study.set_user_attr(REPORT_STEPS_ATTR, wanted)
    return wanted


def study_lock(cfg: SweepConfig, study_name: str) -> Any:
    """The lock every process of a study takes to set the sweep up and to start a trial
    (an OS file lock in the study dir: it dies with its process, so a crash never leaves
    it held). Under it a trial's owner is recorded before anyone else can look, so a
    RUNNING trial seen without an owner under the lock is one whose process died. An
    in-memory study (``checkpoint.enabled: false``) has one process: no lock, no file."""
    import contextlib

    from filelock import FileLock

    if storage_url(cfg, study_name) is None:
        return contextlib.nullcontext()
    directory = study_dir(cfg, study_name)
    directory.mkdir(parents=True, exist_ok=True)
    return FileLock(directory / LOCK_FILE, timeout=600)


LOCK_FILE = ".study.lock"


@dataclass(frozen=True)
class OpenStudy:
    """A study with its storage: trials are addressed by number through the storage's
    public API (no private Optuna attributes)."""

    study: Any
    storage: Any
    study_id: int
    resumed: bool  # the study had trials that no live process is running
    report_steps: str = "epoch"  # "fold" or "epoch": see report_steps()

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
    exists = study_name in _study_names(storage, url)
    if exists and not cfg.checkpoint.auto_resume:
        raise UserError(
            f"study {study_name!r} already exists in {redact_url(url)} and checkpoint.auto_resume is "
            "false: run with checkpoint.auto_resume=true to resume it, or --fresh to archive it "
            "and start again"
        )
    study = optuna.create_study(
        study_name=study_name, storage=storage, load_if_exists=True,
        directions=[o.goal for o in objectives_of(cfg)], sampler=make_sampler(cfg),
        pruner=make_pruner(cfg),
    )
    if RUN_ID_ATTR not in study.user_attrs:
        study.set_user_attr(RUN_ID_ATTR, uuid.uuid4().hex[:8])
    _check_same_objective(cfg, study)
    if len(objectives_of(cfg)) > 1 and study.metric_names is None:  # names in the plots
        study.set_metric_names([o.metric for o in objectives_of(cfg)])
    steps = _settle_report_steps(cfg, study)
    return OpenStudy(study, storage, storage.get_study_id_from_name(study_name),
                     exists and _has_past_trials(study), steps)


def _has_past_trials(study: Any) -> bool:
    """Trials other than those that live processes run now (workers started together join
    one fresh sweep; they do not resume it)."""
    from hposweep.recovery import owner_is_gone

    return any(t.state.name != "RUNNING" or owner_is_gone(owner_of(t))
               for t in study.get_trials(deepcopy=False))


def objective_settings(cfg: SweepConfig) -> dict[str, Any]:
    """The settings that give a trial's value its meaning. Resuming with others would mix
    incomparable values in one study. (The search space, sampler, pruner, max_trials,
    devices and tracking may change between runs.)"""
    from dataclasses import asdict

    from hposweep.data import SYNTHETIC_GENERATOR

    d, t = cfg.data, cfg.train
    kfold = cfg.k_fold.n_splits if cfg.k_fold.enabled else None
    return {
        "study.objective_metric": cfg.study.objective_metric,
        # Only set with several objectives or constraints: older studies keep resuming.
        "study.objectives": ([asdict(o) for o in cfg.study.objectives]
                             if cfg.study.objectives else None),
        "study.constraints": list(cfg.study.constraints) or None,
        "k_fold.n_splits": kfold,
        "data.task": d.task,
        "data.train": file_digest(d.train) if d.train else None,
        "data.synthetic": ({**asdict(d.synthetic), "generator": SYNTHETIC_GENERATOR}
                           if d.synthetic else None),
        "data.validation": (file_digest(d.validation)
                            if d.validation and kfold is None else None),
        "data.validation_split": d.validation_split if kfold is None else None,
        "data.max_length": d.max_length,
        "model.from_config": dict(cfg.model.from_config) if cfg.model.from_config else None,
        "model.per_backbone": dict(cfg.model.per_backbone) or None,
        **{f"train.{k}": getattr(t, k) for k in (
            "trainer", "epochs", "seed", "learning_rate", "batch_size", "weight_decay",
            "warmup_ratio", "dropout", "max_grad_norm")},
        **fine_tuning_settings(cfg),
    }


def fine_tuning_settings(cfg: SweepConfig) -> dict[str, Any]:
    """The built-in trainer's fine-tuning settings that change a trial's value, each only
    where it differs from what studies made before these settings existed did: such a
    study resumes with them at those values. So ``select_epoch`` is recorded when it is
    ``best`` (older studies scored the last epoch: they resume with ``last``)."""
    from dataclasses import asdict

    d, t = cfg.data, cfg.train
    settings: dict[str, Any] = {}
    if t.select_epoch == "best":
        settings["train.select_epoch"] = "best"
    if t.gradient_accumulation_steps != 1:
        settings["train.gradient_accumulation_steps"] = t.gradient_accumulation_steps
    if t.early_stopping is not None:
        settings["train.early_stopping"] = asdict(t.early_stopping)
    if d.group_by_length:
        settings["data.group_by_length"] = True
    if d.dataset is not None:
        from hposweep.hf_datasets import dataset_identity

        settings["data.dataset"] = {**asdict(d.dataset), "path": dataset_identity(d.dataset)}
        settings["data.columns"] = asdict(d.columns)
    return settings


def file_digest(path: str) -> str:
    """A data file's identity: its bytes, not its path (a moved checkout, or workers whose
    shared mount has another path, still hold the same study)."""
    import hashlib

    with open(path, "rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


DATA_FILE_KEYS = ("data.train", "data.validation")


def _check_same_objective(cfg: SweepConfig, study: Any) -> None:
    import json

    current = json.loads(json.dumps(objective_settings(cfg), default=str))
    stored = study.user_attrs.get(OBJECTIVE_ATTR)
    if stored is not None and _upgrade_data_identity(stored, current):
        study.set_user_attr(OBJECTIVE_ATTR, stored)
    if stored is None:
        study.set_user_attr(OBJECTIVE_ATTR, current)
        return
    keys = [*current, *(k for k in stored if k not in current)]  # the order of the settings
    changed = [k for k in keys if stored.get(k) != current.get(k)]
    if changed:
        key = changed[0]
        raise UserError(
            f"study {study.study_name!r} was made with {key}={stored.get(key)!r}, this config has "
            f"{current.get(key)!r}: its trials would not be comparable. Use another study.name "
            "or --fresh (which archives the old study)"
            + (f" ({len(changed) - 1} more setting(s) differ)" if len(changed) > 1 else ""))


def _upgrade_data_identity(stored: dict[str, Any], current: dict[str, Any]) -> bool:
    """Studies made before data was identified by content stored its absolute path: the
    same path still names the same data, and its digest is stored from now on."""
    upgraded = False
    for key in DATA_FILE_KEYS:
        old = stored.get(key)
        if isinstance(old, str) and not old.startswith("sha256:") and Path(old).is_file():
            stored[key] = file_digest(old)
            upgraded = True
    return upgraded


def _study_names(storage: Any, url: str | None) -> list[str]:
    try:
        return [s.study_name for s in storage.get_all_studies()]
    except Exception as exc:
        raise UserError(f"study.storage: cannot read {redact_url(url)}: {first_line(exc)}") from None


def archive_study(cfg: SweepConfig, study_name: str) -> Path | None:
    """``--fresh``: move the default study dir aside (never deleted). Returns the new path."""
    if cfg.study.storage:
        raise UserError("--fresh archives the default SQLite study dir only; with study.storage "
                        "set, use a new study.name instead")
    source = study_dir(cfg, study_name)
    if not source.exists():
        return None
    target = source.with_name(f"{study_name}.archived-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.move(str(source), str(target))
    return target


def redact_url(url: str | None) -> str:
    """A storage URL fit to print: the password (userinfo or ``?password=``) left out.

    Rendered by SQLAlchemy's URL parser; ``journal+redis://`` is parsed as the redis URL it
    wraps. A URL that does not parse cleanly shows only its scheme.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if url is None:
        return "memory"
    if url.startswith("journal:"):
        return url  # a file path
    prefix = "journal+" if url.startswith("journal+redis://") else ""
    scheme, has_scheme, _ = url.partition("://")
    try:
        parsed = make_url(url.removeprefix(prefix))
    except (ArgumentError, ValueError):
        parsed = None
    if parsed is None or "@" in (parsed.host or ""):  # an unquoted @ in the password
        return f"{scheme}://***" if has_scheme else "***"
    parsed = parsed.difference_update_query([k for k in parsed.query if k.lower() == "password"])
    return prefix + parsed.render_as_string(hide_password=True)
