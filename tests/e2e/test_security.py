"""Secrets from the environment never reach MLflow or the console; a storage password
is redacted (a real PostgreSQL study storage, skipped only when none answers). A tampered
sweep dir never makes a resumed sweep delete anything outside it."""

from __future__ import annotations

import json
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


def test_a_tampered_best_json_never_makes_a_resumed_sweep_delete_anything_outside(
        workdir: Path) -> None:
    """best.json names the sweep dir itself ('.') and a trial dir that is a symlink to a
    dir outside, which also looks like a sealed checkpoint of the best trial."""
    config = fake_config(workdir)
    assert hposweep("run", config, "study.max_trials=2", "--json").exit_code == 0
    root = workdir / "outputs" / "hpo" / "fake"
    (real,) = json.loads((root / "best.json").read_text())["best"]
    victim = workdir / "victim"
    (victim / "checkpoint").mkdir(parents=True)
    (victim / "checkpoint" / "hposweep.json").write_text(
        json.dumps({"trial_number": real["trial_number"]}))
    (victim / "checkpoint" / "weights.json").write_text("someone else's")
    linked = f"trial_9_{real['run_id']}_fold1"
    (root / linked).symlink_to(victim)
    worse = real["value"] - 1
    (root / "best.json").write_text(json.dumps({"best": [
        real, {**real, "checkpoint": ".", "value": worse},
        {**real, "trial_number": 9, "checkpoint": f"{linked}/checkpoint", "value": worse}]}))

    result = hposweep("run", config, "study.max_trials=3", "--json")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (victim / "checkpoint").iterdir()) == [
        "hposweep.json", "weights.json"]
    summary = result.json()["backbones"][0]
    kept = workdir / summary["checkpoint"]
    assert kept.is_dir() and not kept.is_symlink() and kept.is_relative_to(root)
    assert (kept / "weights.json").is_file()
    assert [e["checkpoint"] for e in json.loads((root / "best.json").read_text())["best"]] == [
        str(kept.relative_to(root))]
    assert "'.'" in result.stderr and linked in result.stderr
    assert "Traceback" not in result.stderr
