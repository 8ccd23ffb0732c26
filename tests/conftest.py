"""Shared fixtures: a working directory per test with a pre-migrated MLflow store, and
the PostgreSQL, MariaDB and Redis servers some tests need (their absence fails loudly)."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
SMOKE = REPO / "configs" / "smoke.yaml"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # so configs can name train.trainer: fake_trainers:...

# Small and fast: a real sweep of the tiny model in a few seconds.
FAST = ["study.max_trials=3", "k_fold.n_splits=2", "train.epochs=1", "data.synthetic.sentences=60",
        "study.pruner.name=none"]


SERVICE_FIXTURES = {"postgres_db", "redis_url", "mysql_url", "mlflow_server"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The test tiers: everything under ``e2e/`` trains through the CLI or starts processes
    (``slow``); a test that needs a server is ``services`` as well. ``make test-fast`` runs
    the rest."""
    for item in items:
        if "e2e" in item.path.parts:
            item.add_marker(pytest.mark.slow)
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def mlflow_store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow SQLite store: creating one costs ~2 s, copying it ~1 ms."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_store_template: Path) -> Path:
    """A fresh working directory with ``outputs/mlflow.db`` already migrated."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "outputs").mkdir()
    shutil.copy(mlflow_store_template, tmp_path / "outputs" / "mlflow.db")
    return tmp_path


# HPOSWEEP_TESTS_ALLOW_NO_SERVICES=1 skips the tests whose server does not answer (default: they fail).
ALLOW_NO_SERVICES = "HPOSWEEP_TESTS_ALLOW_NO_SERVICES"


@dataclass(frozen=True)
class Service:
    """A server some tests need, and the command that starts it on our (python-svc) machines."""

    name: str
    address: str
    start: str


POSTGRES = Service("PostgreSQL", "127.0.0.1:5432",
                   "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start")
MARIADB = Service("MariaDB", "127.0.0.1:3306",
                  "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd")
REDIS = Service("Redis", "127.0.0.1:6379",
                "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' "
                "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log")


def reach(service: Service, probe: Callable[[], object]) -> None:
    """Make the first contact with ``service``; if it fails, the test fails (or, with
    HPOSWEEP_TESTS_ALLOW_NO_SERVICES=1, skips) with a message that says how to start it."""
    try:
        probe()
        return
    except ImportError as exc:
        problem = (f"its Python driver is not installed ({exc}); `make install` installs the "
                   "dev extra, which has it")
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        problem = (f"nothing answers on {service.address} ({type(exc).__name__}: {first}); "
                   f"start it with: {service.start}")
    # Outside the except clauses: the driver's traceback would bury the message.
    message = (f"{service.name} is needed by this test and {problem} "
               f"(or set {ALLOW_NO_SERVICES}=1 to skip the tests that need it)")
    if os.environ.get(ALLOW_NO_SERVICES) == "1":
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


POSTGRES_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=10"
REDIS_URL = "redis://127.0.0.1:6379/0"


def postgres_admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(statement)


def ping_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL, socket_connect_timeout=10).ping()


def connect_mariadb() -> None:
    import pymysql

    pymysql.connect(host="127.0.0.1", user="root", database="test", connect_timeout=10).close()


@pytest.fixture
def postgres_db() -> Iterator[str]:
    """A database of its own on the local PostgreSQL server, dropped afterwards."""
    name = f"hposweep_test_{uuid.uuid4().hex[:8]}"
    reach(POSTGRES, lambda: postgres_admin(f"CREATE DATABASE {name}"))
    yield name
    postgres_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def redis_url() -> str:
    """The local Redis server (database 0, shared by every test run: use names of your own)."""
    reach(REDIS, ping_redis)
    return REDIS_URL


@pytest.fixture
def mysql_url() -> str:
    """The local MariaDB server's ``test`` database (shared: use names of your own)."""
    reach(MARIADB, connect_mariadb)
    return "mysql+pymysql://root@127.0.0.1/test"
