"""Secrets from the environment never reach MLflow or the console; a storage password
is redacted. Uses a real PostgreSQL study storage (skipped only when none answers)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.helpers import fake_config, hposweep, mlflow_client, runs_by_kind

SECRET = f"s3cret-{uuid.uuid4().hex[:8]}"


def test_env_secrets_never_reach_mlflow_or_the_console(
        workdir: Path, postgres_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPOSWEEP_TEST_DB_PASSWORD", SECRET)
    storage = f"postgresql://postgres:${{oc.env:HPOSWEEP_TEST_DB_PASSWORD}}@127.0.0.1/{postgres_db}"
    result = hposweep("run", fake_config(workdir), f"study.storage={storage}", "study.max_trials=2",
                      "--json")
    assert result.exit_code == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    client = mlflow_client()
    runs = [r for kind in runs_by_kind(client, "fake").values() for r in kind]
    for run in runs:
        everything = [*run.data.params.values(), *run.data.tags.values()]
        assert not any(SECRET in str(v) for v in everything), run.info.run_name
    (parent,) = runs_by_kind(client, "fake")["parent"]
    config_yaml = Path(client.download_artifacts(parent.info.run_id, "config.yaml",
                                                 str(workdir)))
    assert "${oc.env:HPOSWEEP_TEST_DB_PASSWORD}" in config_yaml.read_text()
    assert SECRET not in config_yaml.read_text()
    assert parent.data.params["checkpoint_path"].endswith(f"127.0.0.1/{postgres_db}")
    assert os.environ["HPOSWEEP_TEST_DB_PASSWORD"] == SECRET
