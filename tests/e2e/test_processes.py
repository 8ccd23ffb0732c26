"""Tests that need real processes: signals, a real ``mlflow server`` over HTTP, and the
CLI's start-up imports."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAST, SMOKE
from tests.e2e.test_sweep_behaviour import free_port
from tests.fake_trainers import HOLDING
from tests.helpers import FAKE_CONFIG, fake_config, load_study, mlflow_client, process_env, runs_by_kind

BIN = Path(sys.executable).parent


def test_cli_imports_no_heavy_library_at_start_up() -> None:
    code = ("import sys, hposweep.cli; "
            "print(sorted(m for m in ('torch', 'transformers', 'optuna', 'mlflow', 'omegaconf') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    help_ = subprocess.run([BIN / "hposweep", "--help"], capture_output=True, text=True)
    assert help_.returncode == 0 and "run" in help_.stdout and "validate" in help_.stdout


def start_sweep(workdir: Path, *overrides: str,
                env_extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = process_env(**(env_extra or {}))
    return subprocess.Popen(
        [BIN / "hposweep", "run", fake_config(workdir), *overrides], cwd=workdir, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_line(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if text in line:
            return
    raise AssertionError(f"process ended before printing {text!r}: {proc.stderr.read()}")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_marks_the_trial_failed_and_the_study_resumes(
        workdir: Path, sig: signal.Signals, code: int) -> None:
    proc = start_sweep(workdir, "study.max_trials=2", env_extra={"HPOSWEEP_TEST_HOLD": "1"})
    wait_for_line(proc, HOLDING)  # in the trainer: the trial's MLflow runs are written
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Resume with: hposweep run" in stderr and "Traceback" not in stderr
    study = load_study(workdir / "outputs", "fake_fake")
    assert [t.state.name for t in study.trials] == ["FAIL", "WAITING"], "the retry is queued"
    client = mlflow_client(workdir / "outputs")
    runs = runs_by_kind(client, "fake")
    (parent,) = runs["parent"]
    assert parent.info.status == "KILLED", stderr
    assert [r.info.status for r in runs["trial"]] == ["KILLED"]
    assert [(r.data.tags["state"], r.data.tags["fail_reason"]) for r in runs["trial"]] == [
        ("KILLED", "interrupted")], "as the README says"

    assert study.trials[0].user_attrs["fail_reason"] == "interrupted"

    resumed = start_sweep(workdir, "study.max_trials=2")
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read()
    study = load_study(workdir / "outputs", "fake_fake")
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    retry = study.trials[1]
    assert retry.user_attrs["retried_from"] == 0 and retry.params == study.trials[0].params
    runs = runs_by_kind(client, "fake")
    assert [p.info.run_id for p in runs["parent"]] == [parent.info.run_id]
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"


def test_an_interrupt_dropped_inside_a_finalizer_still_stops_the_sweep(workdir: Path) -> None:
    """A KeyboardInterrupt raised while a finalizer runs is dropped by Python ("Exception
    ignored in ..."); hposweep delivers the signal again until the sweep has caught it, and
    Python's report of the dropped one is not shown."""
    config = fake_config(workdir, FAKE_CONFIG.replace("quadratic", "interrupted_inside_a_finalizer"))
    proc = subprocess.Popen([BIN / "hposweep", "run", config, "study.max_trials=2"], cwd=workdir,
                            env=process_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        _, stderr = proc.communicate(timeout=50)  # the trainer would complete after 60 s
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert "interrupted; the study is saved. Resume with: hposweep run" in stderr
    study = load_study(workdir / "outputs", "fake_fake")
    assert [t.state.name for t in study.trials] == ["FAIL", "WAITING"]
    assert study.trials[0].user_attrs["fail_reason"] == "interrupted"


class MlflowServer:
    """A real ``mlflow server`` on 127.0.0.1 (one worker: see STACK-FACTS on TCP_NODELAY)
    that a test can stop and start again on the same port and stores."""

    def __init__(self, root: Path, backend: str | None = None) -> None:
        self.root = root
        self.backend = backend or f"sqlite:///{root / 'server.db'}"
        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.root / "server.log").open("a")
        self.proc = subprocess.Popen(
            [BIN / "mlflow", "server", "--backend-store-uri", self.backend,
             "--artifacts-destination", str(self.root / "artifacts"), "--serve-artifacts",
             "--host", "127.0.0.1", "--port", self.url.rsplit(":", 1)[1], "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        _wait_until_healthy(self.proc, self.url, self.root / "server.log")

    def stop(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _wait_until_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    import time

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mlflow server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)  # polling a server that is starting; the loop ends on its answer
    raise AssertionError(f"mlflow server did not answer in 120 s: {log.read_text()[-2000:]}")


def test_sweep_tracks_to_a_real_mlflow_server_over_http(
        workdir: Path, mlflow_server: str) -> None:
    from mlflow import MlflowClient

    env = process_env(MLFLOW_TRACKING_URI=mlflow_server)
    proc = subprocess.run([BIN / "hposweep", "run", SMOKE, *FAST, "mlflow.experiment=http-test"],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr.lower(), proc.stderr
    assert "View run" not in proc.stdout, "MLflow's URL printing is off (one request fewer)"
    client = MlflowClient(tracking_uri=mlflow_server)
    runs = runs_by_kind(client, "http-test")
    (parent,) = runs["parent"]
    assert len(runs["trial"]) == 3 and parent.info.status == "FINISHED"
    names = {a.path for a in client.list_artifacts(parent.info.run_id, "best_trial_checkpoint")}
    assert "best_trial_checkpoint/model.safetensors" in names
    local = load_study(workdir / "outputs", "smoke_tiny-bert")
    assert parent.data.tags["best_trial_number"] == str(local.best_trial.number)
    assert not (workdir / "outputs" / "mlartifacts").exists(), "artifacts went to the server"
    shutil.rmtree(workdir / "outputs" / "hpo")


def test_mlflow_server_killed_mid_sweep_then_restarted(workdir: Path, tmp_path: Path) -> None:
    """The server dies during trial 1: one warning, the sweep finishes. Restarted, the next
    run reuses the parent, closes the run left RUNNING, and duplicates nothing."""
    from mlflow import MlflowClient

    server = MlflowServer(tmp_path)
    server.start()
    gate = tmp_path / "gate"
    env_extra = {"MLFLOW_TRACKING_URI": server.url, "HPOSWEEP_TEST_GATE": str(gate)}
    proc = start_sweep(workdir, "study.max_trials=3", "k_fold.enabled=false",
                       env_extra=env_extra)
    try:
        gate.touch()  # lets trial 0 through
        wait_for_line(proc, "trial 1 started")
        server.stop()
        gate.touch()  # trial 1 ends with the server gone
        wait_for_line(proc, "trial 1 COMPLETE")
        gate.touch()  # trial 2 runs untracked
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        assert stderr.count("MLflow failed") == 1, stderr

        server.start()
        again = start_sweep(workdir, "study.max_trials=5", "k_fold.enabled=false",
                            env_extra={"MLFLOW_TRACKING_URI": server.url})
        assert again.wait(timeout=120) == 0, again.stderr.read()
        runs = runs_by_kind(MlflowClient(tracking_uri=server.url), "fake")
        assert len(runs["parent"]) == 1
        numbers = sorted(int(r.data.tags["trial_number"]) for r in runs["trial"])
        assert numbers == [0, 1, 3, 4], "trial 2 ran while MLflow was down; none is duplicated"
        assert all(r.info.status != "RUNNING" for r in runs["trial"])
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
