"""Shared fixtures: a working directory per test with a pre-migrated MLflow store,
the CLI runner, and readers for what a sweep leaves in MLflow and on disk."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
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


@pytest.fixture
def postgres_db() -> str:
    """A database of its own on the local PostgreSQL server, dropped afterwards."""
    name = f"hposweep_test_{uuid.uuid4().hex[:8]}"
    admin = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v",
             "ON_ERROR_STOP=1", "-c"]
    try:
        subprocess.run([*admin, f"CREATE DATABASE {name}"], check=True, capture_output=True,
                       timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"no PostgreSQL server answers on 127.0.0.1:5432 ({exc})")
    yield name
    subprocess.run([*admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True,
                   timeout=30)
