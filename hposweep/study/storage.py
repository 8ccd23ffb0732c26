"""Optuna storages: the study's storage URL, opening it (SQLite, RDB, journal file, journal on
Redis) and redacting it for display."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hposweep.checkpoints.layout import OutputLayout
from hposweep.config.schema import SweepConfig
from hposweep.errors import UserError, first_line


def finished_states() -> tuple[Any, ...]:
    from optuna.trial import TrialState

    return (TrialState.COMPLETE, TrialState.PRUNED)


def storage_url(cfg: SweepConfig, study_name: str) -> str | None:
    """The study's storage: the configured URL, SQLite under the study dir, or None (memory)."""
    if cfg.study.storage:
        return cfg.study.storage
    if cfg.study.persist:
        return f"sqlite:///{OutputLayout.of(cfg.output_dir).study_db(study_name).resolve()}"
    return None


def storage_kind(url: str | None) -> str:
    if url is None:
        return "memory"
    if url.startswith("journal+redis://"):
        return "journal-redis"
    return url.split(":", 1)[0].split("+", 1)[0]


def make_storage(url: str | None, cfg: SweepConfig | None = None, reading: bool = False) -> Any:
    """The Optuna storage for ``url``; with ``cfg``, RDB storages get heartbeats that fail
    and retry the trials of workers that died (see :mod:`hposweep.study.recovery`). ``reading``:
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
        from hposweep.study.recovery import heartbeat_callback

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


def study_names(storage: Any, url: str | None) -> list[str]:
    try:
        return [s.study_name for s in storage.get_all_studies()]
    except Exception as exc:
        raise UserError(f"study.storage: cannot read {redact_url(url)}: {first_line(exc)}") from None


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


def anything_stored(url: str | None) -> bool:
    """Whether the storage holds Optuna's data at all (checked without writing)."""
    if url is None:
        return False
    if url.startswith("sqlite:///"):  # a directory there is reported by make_storage
        return Path(url.removeprefix("sqlite:///")).exists()
    if url.startswith("journal:"):
        return Path(url.removeprefix("journal:")).exists()
    if url.startswith("journal+redis://"):
        return True
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(url)
        try:
            return sqlalchemy.inspect(engine).has_table("studies")
        finally:
            engine.dispose()
    except Exception as exc:
        raise UserError(f"study.storage: cannot read {redact_url(url)}: {first_line(exc)}") from None


def study_exists(cfg: SweepConfig, study_name: str) -> bool:
    """Whether the study is stored (looked up without creating a file or a table)."""
    url = storage_url(cfg, study_name)
    return anything_stored(url) and study_name in study_names(make_storage(url, reading=True), url)
