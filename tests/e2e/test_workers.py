"""Several workers on one study: PostgreSQL for the study, a real `mlflow server` (with a
PostgreSQL backend) for tracking, one shared output_dir. Real processes, real kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import psycopg
import pytest
import sqlalchemy.exc

from hposweep.errors import UserError
from tests.e2e.test_processes import MlflowServer
from tests.helpers import fake_config, load_study, mlflow_client, process_env, runs_by_kind

BIN = Path(sys.executable).parent
MAX_TRIALS = 12


@pytest.fixture
def server(tmp_path: Path, postgres_db: str) -> Iterator[str]:
    """An mlflow server whose backend store is a PostgreSQL database of its own."""
    mlflow_db = f"{postgres_db}_mlflow"
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c",
                    f"CREATE DATABASE {mlflow_db}"], check=True, capture_output=True)
    server = MlflowServer(tmp_path, backend=f"postgresql://postgres@127.0.0.1/{mlflow_db}")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c",
                        f"DROP DATABASE IF EXISTS {mlflow_db} WITH (FORCE)"], capture_output=True)


def start_worker(workdir: Path, storage: str, url: str, *extra: str,
                 hold: bool = False) -> subprocess.Popen[str]:
    env = process_env(MLFLOW_TRACKING_URI=url, **({"HPOSWEEP_TEST_HOLD": "1"} if hold else {}))
    return subprocess.Popen(
        [str(BIN / "hposweep"), "run", str(fake_config(workdir)), f"study.storage={storage}",
         "train.trainer=fake_trainers:sleepy", f"study.max_trials={MAX_TRIALS}",
         "k_fold.enabled=false", "study.heartbeat_interval=1", "study.grace_period=3", *extra],
        cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def check_the_shared_study(workdir: Path, storage: str, url: str) -> None:
    import optuna
    from mlflow import MlflowClient

    from tests.helpers import runs_by_kind

    study = optuna.load_study(study_name="fake_fake", storage=storage)
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == MAX_TRIALS, [t.state.name for t in study.trials]
    assert len({t.number for t in study.trials}) == len(study.trials)
    runs = runs_by_kind(MlflowClient(tracking_uri=url), "fake")
    (parent,) = runs["parent"]
    assert parent.info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in runs["trial"]} == {parent.info.run_id}
    assert sorted(int(r.data.tags["trial_number"]) for r in runs["trial"]) == sorted(
        t.number for t in study.trials if "hposweep.trial" in t.user_attrs)
    root = workdir / "outputs" / "hpo" / "fake"
    (kept,) = [p for p in root.iterdir() if p.name.startswith("trial_")]
    meta = json.loads((kept / "checkpoint" / "hposweep.json").read_text())
    assert meta["trial_number"] == study.best_trial.number
    client = MlflowClient(tracking_uri=url)
    logged = client.download_artifacts(parent.info.run_id, "best_trial_checkpoint/hposweep.json",
                                       str(workdir / "dl"))
    assert json.loads(Path(logged).read_text())["trial_number"] == study.best_trial.number
    assert parent.data.metrics["n_completed_trials"] == len(
        [t for t in study.trials if t.state.name == "COMPLETE"])


def test_three_workers_share_one_study_exactly(workdir: Path, postgres_db: str, server: str) -> None:
    storage = f"postgresql://postgres@127.0.0.1/{postgres_db}"
    workers = [start_worker(workdir, storage, server) for _ in range(3)]
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
    check_the_shared_study(workdir, storage, server)


def test_a_killed_workers_trial_is_retried_by_the_others(
        workdir: Path, postgres_db: str, server: str) -> None:
    storage = f"postgresql://postgres@127.0.0.1/{postgres_db}"
    victim = start_worker(workdir, storage, server, hold=True)
    assert victim.stdout is not None
    for line in victim.stdout:
        if "started" in line:
            break
    others = [start_worker(workdir, storage, server) for _ in range(2)]
    deadline = time.monotonic() + 60
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={postgres_db}") as connection:
        # Optuna never calls a trial stale that never beat: kill after the first beat.
        while not connection.execute("SELECT COUNT(*) FROM trial_heartbeats").fetchone()[0]:
            assert time.monotonic() < deadline, "the worker recorded no heartbeat"
            time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    for worker in others:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
    study = optuna.load_study(study_name="fake_fake", storage=storage)
    (killed,) = [t for t in study.trials if t.state.name == "FAIL"]  # the victim's; no surplus
    (retry,) = [t for t in study.trials if t.user_attrs.get("retried_from") == killed.number]
    assert retry.state.name == "COMPLETE" and retry.params == killed.params
    check_the_shared_study(workdir, storage, server)


@pytest.mark.parametrize("storage", [None, "journal:{dir}/study.log"])
def test_workers_on_one_machine_share_sqlite_or_a_journal_without_lock_errors(
        workdir: Path, storage: str | None) -> None:
    env = process_env()
    extra = [f"study.storage={storage.format(dir=workdir)}"] if storage else []
    proc = subprocess.run(
        [str(BIN / "hposweep"), "run", str(fake_config(workdir)), "--workers", "2",
         "train.trainer=fake_trainers:no_op", "study.max_trials=50", "k_fold.enabled=false",
         "study.sampler.name=tpe", *extra],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "locked" not in proc.stderr.lower()
    assert "started 2 workers" in proc.stdout and "(study total 50/50)" in proc.stdout
    status = subprocess.run([str(BIN / "hposweep"), "status", str(fake_config(workdir)),
                             "--json", *extra], cwd=workdir, env=env, capture_output=True,
                            text=True, check=True)
    (study,) = json.loads(status.stdout)
    assert study["finished"] == 50
    numbers = {t["number"] for t in study["trials"]}
    assert len(numbers) == len(study["trials"]), "no trial number is used twice"


def test_each_worker_gets_its_share_of_cores(workdir: Path) -> None:
    cores = os.cpu_count() or 1
    if cores < 2:
        pytest.skip("one core: a worker's share and all the cores are the same 1 thread")
    share = cores // 2
    # What every worker would inherit if --workers did not set it: all the cores (torch caps
    # its threads there), never the share; torch's own default, the physical cores, can be.
    env = process_env(OMP_NUM_THREADS=str(cores), MKL_NUM_THREADS=str(cores))
    proc = subprocess.run(
        [str(BIN / "hposweep"), "run", str(fake_config(workdir)), "--workers", "2",
         "train.trainer=fake_trainers:records_threads", "study.max_trials=4",
         "k_fold.enabled=false", "mlflow.enabled=false", "train.device=cpu",
         "checkpoint.save_only_best=false"],  # every trial keeps what its worker had
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    records = (workdir / "outputs" / "hpo" / "fake").glob("trial_*/checkpoint/threads.json")
    assert [json.loads(r.read_text())["threads"] for r in records] == [share] * 4


def test_workers_interrupted_together_resume_each_trial_exactly_once(workdir: Path) -> None:
    """Ctrl-C reaches every worker (one process group); each queues its trial's retry, and
    the next run's workers run each retry once. (Workers rarely ask at the same instant
    here; tests/unit/test_shared_storage.py forces that race.)"""
    command = [str(BIN / "hposweep"), "run", str(fake_config(workdir)), "--workers", "2",
               "study.max_trials=4", "k_fold.enabled=false"]
    first = subprocess.Popen(command, cwd=workdir, env=process_env(HPOSWEEP_TEST_HOLD="1"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    deadline = time.monotonic() + 120
    while len(trials_in_trainer(workdir)) < 2:
        assert first.poll() is None and time.monotonic() < deadline, "no 2 trials running"
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGINT)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 130, stderr
    assert sorted(t.state.name for t in load_study(workdir / "outputs", "fake_fake").trials) == [
        "FAIL", "FAIL", "WAITING", "WAITING"]

    resumed = subprocess.run(command, cwd=workdir, env=process_env(), capture_output=True,
                             text=True, timeout=300)

    assert resumed.returncode == 0, resumed.stderr
    ran = load_study(workdir / "outputs", "fake_fake").trials
    # 2 interrupted, their 2 retries, 2 new: no surplus trial was created.
    assert sorted(t.user_attrs.get("retried_from", -1) for t in ran) == [-1, -1, -1, -1, 0, 1]
    assert [t.state.name for t in ran].count("COMPLETE") == 4
    numbers = [int(r.data.tags["trial_number"])
               for r in runs_by_kind(mlflow_client(workdir / "outputs"), "fake")["trial"]]
    assert sorted(numbers) == [t.number for t in ran], "every trial ran in one process"


def trials_in_trainer(workdir: Path) -> list[Any]:
    """The RUNNING trials that have reached the trainer (their MLflow run is recorded just
    before); none while the workers have not created the study yet."""
    from hposweep.study.storage import make_storage

    db = workdir / "outputs" / "hpo" / "fake_fake" / "study.db"
    if not db.exists():
        return []
    try:  # read only: creating Optuna's tables here would race with the workers doing it
        study = optuna.load_study(study_name="fake_fake",
                                  storage=make_storage(f"sqlite:///{db}", reading=True))
    except (KeyError, sqlalchemy.exc.OperationalError, UserError):  # the workers make it
        return []
    return [t for t in study.trials if t.state.name == "RUNNING"
            and "mlflow_run_id" in t.user_attrs.get("hposweep.trial", {})]
