"""Fault injection with real processes: SIGKILL at chosen points (``HPOSWEEP_KILL_AT``),
then the same command again. Asserts trial counts, no duplicates, identical results to an
uninterrupted run, one parent run, and a complete, loadable best checkpoint."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SMOKE
from tests.helpers import checkpoint_dirs, load_study, mlflow_client, process_env, runs_by_kind

BIN = Path(sys.executable).parent
# 2 trials x 3 folds x 2 epochs of the tiny model: each fold saves its state after epoch 0.
SWEEP = ["study.max_trials=2", "k_fold.n_splits=3", "train.epochs=2",
         "data.synthetic.sentences=60", "study.pruner.name=none"]


def hposweep_process(workdir: Path, *args: str, kill_at: str | None = None
                     ) -> subprocess.CompletedProcess[str]:
    env = process_env(**({"HPOSWEEP_KILL_AT": kill_at} if kill_at else {}))
    return subprocess.run([str(BIN / "hposweep"), *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=600)


def run_sweep(workdir: Path, *extra: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    return hposweep_process(workdir, "run", str(SMOKE), *SWEEP, *extra, kill_at=kill_at)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, mlflow_store_template: Path) -> dict:
    workdir = tmp_path_factory.mktemp("uninterrupted")
    (workdir / "outputs").mkdir()
    shutil.copy(mlflow_store_template, workdir / "outputs" / "mlflow.db")
    proc = run_sweep(workdir)
    assert proc.returncode == 0, proc.stderr
    study = load_study(workdir / "outputs", "smoke_tiny-bert")
    return {json.dumps(t.params, sort_keys=True): t.value for t in study.trials}


def assert_one_complete_best_checkpoint(workdir: Path, study) -> Path:
    root = workdir / "outputs" / "hpo" / "tiny-bert"
    best = json.loads((root / "best.json").read_text())["best"]
    assert [e["trial_number"] for e in best] == [study.best_trial.number]
    (kept,) = [d for d in checkpoint_dirs(workdir / "outputs", "tiny-bert")]
    checkpoint = root / kept / "checkpoint"
    meta = json.loads((checkpoint / "hposweep.json").read_text())
    assert meta["trial_number"] == study.best_trial.number
    assert meta["objective_value"] == pytest.approx(study.best_value)
    from transformers import AutoModelForTokenClassification

    AutoModelForTokenClassification.from_pretrained(checkpoint)
    assert not list(root.glob(".tmp-*")) and not list(root.glob("trial_*/resume"))
    return checkpoint


def test_kill_mid_trial_then_resume_retries_it_and_matches_an_uninterrupted_run(
        workdir: Path, uninterrupted: dict) -> None:
    killed = run_sweep(workdir, kill_at="trial1:fold1:epoch0")
    assert killed.returncode == -signal.SIGKILL

    status = hposweep_process(workdir, "status", str(SMOKE), *SWEEP)
    assert status.returncode == 0 and "trial 1: its process died" in status.stdout

    resumed = run_sweep(workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert "retrying it with the same parameters" in resumed.stdout
    study = load_study(workdir / "outputs", "smoke_tiny-bert")
    states = [(t.number, t.state.name, t.user_attrs.get("retried_from")) for t in study.trials]
    assert states == [(0, "COMPLETE", None), (1, "FAIL", None), (2, "COMPLETE", 1)]
    assert study.trials[2].params == study.trials[1].params
    assert "died" in study.trials[1].user_attrs["fail_reason"]
    # same seed, same params, resumed mid-trial: exactly the uninterrupted values
    for trial in (study.trials[0], study.trials[2]):
        assert trial.value == uninterrupted[json.dumps(trial.params, sort_keys=True)]

    runs = runs_by_kind(mlflow_client(workdir / "outputs"), "hposweep-smoke")
    assert len(runs["parent"]) == 1
    trial_runs = {r.data.tags["trial_number"]: r for r in runs["trial"]}
    assert len(trial_runs) == len(runs["trial"]) == 3, "no duplicate trial runs"
    assert trial_runs["1"].info.status == "KILLED"
    assert trial_runs["2"].data.tags["retried_from"] == "1"
    retry_folds = sorted(r.data.tags["fold_idx"] for r in runs["fold"]
                         if r.data.tags["trial_number"] == "2")
    assert retry_folds == ["1", "2"], "fold 0 finished before the kill and is not retrained"
    assert_one_complete_best_checkpoint(workdir, study)


@pytest.mark.parametrize("point", ["checkpoint:staged", "checkpoint:renamed",
                                   "checkpoint:recorded"])
def test_kill_during_the_checkpoint_decision_leaves_a_complete_best(
        workdir: Path, point: str) -> None:
    killed = run_sweep(workdir, kill_at=point)
    assert killed.returncode == -signal.SIGKILL
    resumed = run_sweep(workdir)
    assert resumed.returncode == 0, resumed.stderr
    study = load_study(workdir / "outputs", "smoke_tiny-bert")
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 2
    assert_one_complete_best_checkpoint(workdir, study)


def test_kill_during_the_artifact_upload_completes_it_once_on_resume(workdir: Path) -> None:
    killed = run_sweep(workdir, kill_at="mlflow:artifact-file")
    assert killed.returncode == -signal.SIGKILL
    resumed = run_sweep(workdir)
    assert resumed.returncode == 0, resumed.stderr
    study = load_study(workdir / "outputs", "smoke_tiny-bert")
    checkpoint = assert_one_complete_best_checkpoint(workdir, study)
    client = mlflow_client(workdir / "outputs")
    (parent,) = runs_by_kind(client, "hposweep-smoke")["parent"]
    logged = {Path(a.path).name: a.file_size
              for a in client.list_artifacts(parent.info.run_id, "best_trial_checkpoint")}
    assert logged == {p.name: p.stat().st_size for p in checkpoint.iterdir()}
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"


def test_resuming_a_finished_study_adds_and_logs_nothing(workdir: Path) -> None:
    assert run_sweep(workdir).returncode == 0
    client = mlflow_client(workdir / "outputs")
    (parent,) = runs_by_kind(client, "hposweep-smoke")["parent"]
    history = client.get_metric_history(parent.info.run_id, "n_trials")
    again = run_sweep(workdir)
    assert again.returncode == 0
    assert len(load_study(workdir / "outputs", "smoke_tiny-bert").trials) == 2
    assert client.get_metric_history(parent.info.run_id, "n_trials") == history
    assert len(runs_by_kind(client, "hposweep-smoke")["trial"]) == 2


def test_unreadable_best_json_is_moved_aside_and_rebuilt(workdir: Path) -> None:
    assert run_sweep(workdir, "study.max_trials=1").returncode == 0
    best = workdir / "outputs" / "hpo" / "tiny-bert" / "best.json"
    best.write_text("{ not json")
    resumed = run_sweep(workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert "unreadable" in resumed.stderr
    aside = list(best.parent.glob("best.json.unreadable-*"))
    assert len(aside) == 1 and aside[0].read_text() == "{ not json"
    assert_one_complete_best_checkpoint(workdir, load_study(workdir / "outputs", "smoke_tiny-bert"))


def test_max_retry_zero_does_not_retry_but_the_study_still_completes(workdir: Path) -> None:
    assert run_sweep(workdir, "study.max_retry=0", kill_at="trial0:fold0:epoch0").returncode < 0
    resumed = run_sweep(workdir, "study.max_retry=0")
    assert resumed.returncode == 0, resumed.stderr
    study = load_study(workdir / "outputs", "smoke_tiny-bert")
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert all("retried_from" not in t.user_attrs for t in study.trials)


def test_a_dead_worker_on_another_host_is_retried_after_its_heartbeat_goes_stale(
        workdir: Path) -> None:
    """The first worker runs as host 'other-host' (its own UTS namespace), so the local
    dead-owner check cannot judge it: only the RDB heartbeat can, after the grace period."""
    import time

    import optuna

    from tests.helpers import fake_config

    config = fake_config(workdir)
    beat = ["study.heartbeat_interval=1", "study.grace_period=2", "study.max_trials=2",
            "k_fold.enabled=false", "mlflow.enabled=false"]
    env = process_env(HPOSWEEP_TEST_HOLD="1")
    worker = subprocess.Popen(
        ["unshare", "-u", "sh", "-c", 'hostname other-host && exec "$@"', "sh",
         str(BIN / "hposweep"), "run", str(config), *beat],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    for line in worker.stdout:
        if "trial 0 started" in line:
            break
    else:
        pytest.skip(f"cannot run a worker in its own UTS namespace: {worker.stderr.read()}")
    db = workdir / "outputs" / "hpo" / "fake_fake" / "study.db"
    deadline = time.monotonic() + 60
    while not _heartbeats(db):  # Optuna never calls a trial stale that never beat
        assert time.monotonic() < deadline, "the worker recorded no heartbeat"
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)

    study = load_study(workdir / "outputs", "fake_fake")
    assert study.trials[0].user_attrs["hposweep.trial"]["owner"]["host"] == "other-host"
    storage = optuna.storages.RDBStorage(f"sqlite:///{db}", heartbeat_interval=1, grace_period=2)
    deadline = time.monotonic() + 60
    while not storage._get_stale_trial_ids(study._study_id):  # wait on the condition itself
        assert time.monotonic() < deadline, "the heartbeat never went stale"
        time.sleep(0.1)

    resumed = hposweep_process(workdir, "run", str(config), *beat)
    assert resumed.returncode == 0, resumed.stderr
    trials = optuna.load_study(study_name="fake_fake", storage=storage).trials
    assert [t.state for t in trials][:2] == [optuna.trial.TrialState.FAIL,
                                             optuna.trial.TrialState.COMPLETE]
    assert trials[1].user_attrs["retried_from"] == 0 and trials[1].params == trials[0].params


def _heartbeats(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as connection:
        try:
            return connection.execute("SELECT COUNT(*) FROM trial_heartbeats").fetchone()[0]
        except sqlite3.OperationalError:  # the table is not there yet
            return 0
