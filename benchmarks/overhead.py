"""Orchestration overhead per trial: 200 trials of a no-op trainer through `hposweep run`
(SQLite study, MLflow, one child run per trial, no k-fold) against a plain script that does
the same with Optuna and MLflow directly (same storage kind, same runs, params, metrics,
one intermediate report per trial), in one run. Both against a local SQLite MLflow store,
then both against a real `mlflow server --workers 1` on 127.0.0.1. Target: within 1.2x."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import BIN, REPO

TRIALS = 200
CONFIG = f"""\
study: {{name: "overhead_{{backbone}}", objective_metric: score, max_trials: {TRIALS},
        sampler: {{name: random, seed: 0}}, pruner: {{name: none}}, heartbeat_interval: null}}
search_space: {{x: {{type: float, low: 0.0, high: 1.0}}}}
backbones: [noop]
data: {{synthetic: {{sentences: 20, seed: 0}}}}
train: {{trainer: "fake_trainers:no_op", resume_every_epochs: 0}}
k_fold: {{enabled: false}}
mlflow: {{experiment: overhead}}
"""

PLAIN = """
import sys, time, optuna
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
optuna.logging.set_verbosity(optuna.logging.ERROR)
out, uri, trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
study = optuna.create_study(study_name="plain", storage=f"sqlite:///{out}/study.db",
                            sampler=optuna.samplers.RandomSampler(seed=0))
client = MlflowClient(tracking_uri=uri)
exp = client.create_experiment(f"plain-{time.time_ns()}")
parent = client.create_run(exp, run_name="plain", tags={"hposweep.runType": "sweep"}).info.run_id
def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    run = client.create_run(exp, run_name=f"trial_{trial.number}",
                            tags={"mlflow.parentRunId": parent, "trial_number": str(trial.number)})
    trial.report(x, 0)
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id, metrics=[Metric("score", x, now, 0)],
                     params=[Param("x", str(x)), Param("trial_number", str(trial.number))],
                     tags=[RunTag("state", "COMPLETE")])
    client.set_terminated(run.info.run_id, "FINISHED")
    return x
study.optimize(objective, n_trials=trials)
client.set_terminated(parent, "FINISHED")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def per_trial_ms(storage: str, study_name: str) -> float:
    """From the study's own timestamps, first trial start to last trial end: process
    start-up is excluded alike for both (it is ~5 s of noise against ~5 s of trials)."""
    import optuna

    trials = optuna.load_study(study_name=study_name, storage=storage).trials
    span = max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
    return span.total_seconds() * 1000 / len(trials)


def measure(tmp: Path, label: str, uri: str | None) -> tuple[str, float, float]:
    # The baseline gets the settings hposweep uses: no URL printing (a get_run per run).
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests"),
           "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    ours = tmp / f"ours-{label}"
    ours.mkdir(parents=True)
    (ours / "overhead.yaml").write_text(CONFIG)
    extra = [f"mlflow.tracking_uri={uri}"] if uri else []
    subprocess.run([str(BIN / "hposweep"), "run", "overhead.yaml", *extra], cwd=ours, env=env,
                   check=True, capture_output=True)
    hposweep = per_trial_ms(f"sqlite:///{ours}/outputs/hpo/overhead_noop/study.db",
                            "overhead_noop")
    plain_dir = tmp / f"plain-{label}"
    plain_dir.mkdir(parents=True)
    plain_uri = uri or f"sqlite:///{plain_dir}/mlflow.db"
    subprocess.run([sys.executable, "-c", PLAIN, str(plain_dir), plain_uri, str(TRIALS)],
                   cwd=plain_dir, env=env, check=True, capture_output=True)
    plain = per_trial_ms(f"sqlite:///{plain_dir}/study.db", "plain")
    return label, plain, hposweep


REPEATS = 3


def median_of(tmp: Path, label: str, uri: str | None) -> tuple[str, float, float]:
    """Median of interleaved repeats: a 2-core machine swings ±30 % between runs."""
    runs = [measure(tmp / f"{i}", label, uri) for i in range(REPEATS)]
    return (label, statistics.median(r[1] for r in runs), statistics.median(r[2] for r in runs))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rows = [median_of(tmp, "local SQLite MLflow store", None)]
        port = free_port()
        server = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{tmp}/server.db",
             "--artifacts-destination", str(tmp / "artifacts"), "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)  # waiting for the server to come up, not for a result
            rows.append(median_of(tmp, "mlflow server --workers 1", f"http://127.0.0.1:{port}"))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
    print(f"{TRIALS} no-op trials, SQLite Optuna study, one MLflow child run per trial "
          f"(first trial start to last trial end, from the study; median of {REPEATS})")
    print(f"{'MLflow':<28}{'plain ms/trial':>16}{'hposweep ms/trial':>19}{'ratio':>8}")
    for label, plain, ours in rows:
        print(f"{label:<28}{plain:>16.1f}{ours:>19.1f}{ours / plain:>8.2f}")


if __name__ == "__main__":
    main()
