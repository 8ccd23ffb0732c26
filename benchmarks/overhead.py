"""Orchestration overhead per trial: N trials of a no-op trainer through `hposweep run` with
its defaults (heartbeats on, resume on, SQLite study, one MLflow child run per trial)
against a plain script that does the same with Optuna and MLflow directly (SQLite study,
the same MLflow requests per run, the same sampler). The two sides alternate which runs
first (A B, B A, ...); each figure is the median of the repetitions. Measured against a
local SQLite MLflow store, then against a real `mlflow server --workers 1`.

Two figures per side: ms per trial from the study's own timestamps (first trial start to
last trial end: the loop alone), and the whole command's wall time (start-up, imports,
MLflow connection and the end of the sweep included: what a user waits for).
Target: hposweep within 1.2x the plain script per trial."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from _common import (
    BIN,
    alternating,
    bench_env,
    checked_wall,
    copy_store,
    migrated_mlflow_store,
    quick_mode,
    span_seconds,
    study_trials,
)

TARGET = 1.2
# The workload (trainer, search space, sampler, no k-fold) is the benchmark's; every
# setting of hposweep's own orchestration (heartbeats, resume, checkpoints, retries,
# pruner, MLflow, storage) is left at its default. The random sampler, on both sides,
# keeps TPE's cost (equal on both sides, growing with the trials) from diluting the ratio.
CONFIG = """\
study: {{name: "overhead_{{backbone}}", objective_metric: score, max_trials: {trials},
        sampler: {{name: random, seed: 0}}}}
search_space: {{x: {{type: float, low: 0.0, high: 1.0}}}}
backbones: [noop]
data: {{synthetic: {{sentences: 20, seed: 0}}}}
train: {{trainer: "fake_trainers:no_op"}}
k_fold: {{enabled: false}}
mlflow: {{experiment: {experiment}}}
"""

# What a user would write by hand: the same study storage kind and sampler, and per trial
# the same MLflow requests hposweep makes (create the run, one batch, terminate).
PLAIN = """
import sys, time, optuna
from pathlib import Path
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
optuna.logging.set_verbosity(optuna.logging.ERROR)
out, uri, experiment, trials = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
study = optuna.create_study(study_name="plain", storage=f"sqlite:///{out}/study.db",
                            sampler=optuna.samplers.RandomSampler(seed=0))
client = MlflowClient(tracking_uri=uri)
exp = client.create_experiment(experiment)
parent = client.create_run(exp, run_name="plain", tags={"hposweep.runType": "sweep"}).info.run_id
client.log_batch(parent, params=[Param("x", "float(0.0, 1.0)"), Param("max_trials", str(trials))])
client.log_text(parent, Path(sys.argv[5]).read_text(), "config.yaml")
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
now = int(time.time() * 1000)
client.log_batch(parent, metrics=[Metric("best_score", study.best_value, now, 0),
                                  Metric("n_trials", trials, now, 0)])
client.set_terminated(parent, "FINISHED")
"""


@dataclass(frozen=True)
class Run:
    ms_per_trial: float  # from the study's timestamps: the trial loop alone
    wall_s: float  # the whole command, start-up included


def run_side(side: str, workdir: Path, uri: str | None, trials: int, template: Path) -> Run:
    """One run of one side in a fresh dir; the local MLflow store is a migrated copy."""
    workdir.mkdir(parents=True)
    # hposweep sets this for itself; the baseline gets it too (else a get_run per run).
    env = {**bench_env(), "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
    experiment = f"overhead-{workdir.parent.name}-{workdir.name}"  # one per run, on a server too
    config = workdir / "overhead.yaml"
    config.write_text(CONFIG.format(trials=trials, experiment=experiment))
    if side == "hposweep":
        if uri is None:
            copy_store(template, workdir / "outputs" / "mlflow.db")
        extra = [f"mlflow.tracking_uri={uri}"] if uri else []
        wall = checked_wall([str(BIN / "hposweep"), "run", config.name, *extra],
                            cwd=workdir, env=env)
        db, name = workdir / "outputs" / "hpo" / "overhead_noop" / "study.db", "overhead_noop"
    else:
        store = uri or f"sqlite:///{copy_store(template, workdir / 'mlflow.db')}"
        wall = checked_wall([sys.executable, "-c", PLAIN, str(workdir), store, experiment,
                             str(trials), str(config)], cwd=workdir, env=env)
        db, name = workdir / "study.db", "plain"
    trial_list = study_trials(db, name)
    if len(trial_list) != trials:
        raise SystemExit(f"{side}: {len(trial_list)} trials in the study, expected {trials}")
    return Run(span_seconds(trial_list) * 1000 / trials, wall)


def measure(tmp: Path, uri: str | None, trials: int, repeats: int,
            template: Path) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {"plain": [], "hposweep": []}
    for i, order in enumerate(alternating(("plain", "hposweep"), repeats)):
        for side in order:
            runs[side].append(run_side(side, tmp / f"rep{i}" / side, uri, trials, template))
    return runs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(tmp: Path) -> Iterator[str]:
    """A real `mlflow server --workers 1` on 127.0.0.1 (see the README on why one worker)."""
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
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)  # polling the server's health endpoint until it answers
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()


def report(label: str, runs: dict[str, list[Run]]) -> None:
    plain_ms = statistics.median(r.ms_per_trial for r in runs["plain"])
    ours_ms = statistics.median(r.ms_per_trial for r in runs["hposweep"])
    plain_wall = statistics.median(r.wall_s for r in runs["plain"])
    ours_wall = statistics.median(r.wall_s for r in runs["hposweep"])
    ratio = ours_ms / plain_ms
    verdict = "met" if ratio <= TARGET else "MISSED"
    print(f"{label:<28}{plain_ms:>9.1f}{ours_ms:>10.1f}{ratio:>7.2f}  {verdict:<7}"
          f"{plain_wall:>9.1f}{ours_wall:>10.1f}{ours_wall / plain_wall:>7.2f}")


def main() -> None:
    quick = quick_mode(__doc__)
    trials, repeats = (20, 2) if quick else (200, 4)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        template = migrated_mlflow_store(tmp)
        results = {"local SQLite MLflow store": measure(tmp / "local", None, trials, repeats,
                                                        template)}
        with mlflow_server(tmp) as uri:
            results["mlflow server --workers 1"] = measure(tmp / "server", uri, trials, repeats,
                                                           template)
    print(f"{trials} no-op trials, SQLite Optuna study, one MLflow child run per trial; "
          f"median of {repeats} runs per side, the sides alternating which runs first"
          + (" (--quick: figures mean nothing)" if quick else ""))
    print(f"{'':28}{'ms/trial (study timestamps)':^33}  {'wall s (whole command)':^26}")
    print(f"{'MLflow':<28}{'plain':>9}{'hposweep':>10}{'ratio':>7}  {'<=1.2x':<7}"
          f"{'plain':>9}{'hposweep':>10}{'ratio':>7}")
    for label, runs in results.items():
        report(label, runs)


if __name__ == "__main__":
    main()
