"""Budgets of the whole study (``study.budget``) and ``study.stop_when.no_improvement``,
end to end: real worker processes sharing one SQLite study, resumes, ``status``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hposweep.results import owner_of
from tests.helpers import fake_config, hposweep, load_study, process_env

BIN = Path(sys.executable).parent
TRIAL_SECONDS = 0.5
BUDGET_SECONDS = 4.0
TIMED = ["train.trainer=compute_trainers:timed", "k_fold.enabled=false", "mlflow.enabled=false",
         f"study.budget.trial_hours={BUDGET_SECONDS / 3600}"]


def test_a_trial_hours_budget_holds_across_a_resume_and_two_workers(workdir: Path) -> None:
    config = fake_config(workdir)
    env = process_env(TRIAL_SECONDS=str(TRIAL_SECONDS))
    # A first run that ends (max_trials) before the budget: its trial time counts later.
    first = subprocess.run([str(BIN / "hposweep"), "run", str(config), *TIMED, "study.max_trials=3"],
                           cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    before = load_study("outputs", "fake_fake").trials
    spent_before = sum(t.duration.total_seconds() for t in before)
    assert spent_before < BUDGET_SECONDS
    barrier = workdir / "barrier"
    barrier.mkdir()  # both workers start their trials together
    workers = subprocess.run([str(BIN / "hposweep"), "run", str(config), *TIMED,
                              "study.max_trials=200", "--workers", "2"],
                             cwd=workdir, capture_output=True, text=True, timeout=300,
                             env={**env, "HPOSWEEP_BARRIER_AT": "setup",
                                  "HPOSWEEP_BARRIER_DIR": str(barrier), "HPOSWEEP_BARRIER_PARTIES": "2"})
    assert workers.returncode == 0, workers.stderr
    trials = load_study("outputs", "fake_fake").trials
    assert len({owner_of(t)["pid"] for t in trials[len(before):]}) == 2, "both workers ran trials"
    assert all(t.state.name == "COMPLETE" for t in trials) and len(trials) < 200
    durations = [t.duration.total_seconds() for t in trials]
    total = sum(durations)
    assert total >= BUDGET_SECONDS, "the workers stopped because the budget was spent"
    assert total <= BUDGET_SECONDS + 2 * max(durations), "overshoot: one trial per worker at most"
    # Another run starts nothing and says why; status shows the budget used and left.
    again = hposweep("run", config, *TIMED, "study.max_trials=200", "--json")
    assert again.exit_code == 0
    summary = again.json()["backbones"][0]
    assert summary["stopped"] == "trial_hours" and summary["n_trials"] == len(trials)
    assert summary["stop_message"].startswith(f"study.budget.trial_hours={BUDGET_SECONDS / 3600:g} is spent")
    plain = hposweep("run", config, *TIMED, "study.max_trials=200")
    assert "stopped early: study.budget.trial_hours=" in plain.stdout
    status = hposweep("status", config, *TIMED, "--json").json()[0]
    assert status["budget"]["trial_hours"]["used"] * 3600 >= BUDGET_SECONDS
    assert status["budget"]["trial_hours"]["left"] == 0
    assert status["stopped"].startswith("study.budget.trial_hours=")
    shown = hposweep("status", config, *TIMED)
    assert "budget trial_hours:" in shown.stdout and "h left" in shown.stdout
    assert "stopped: study.budget.trial_hours=" in shown.stdout


@pytest.mark.parametrize(("trainer", "stopped", "complete"), [
    ("flat", "no_improvement", 4),  # the first trial, then 3 that did not beat it
    ("improving", "max_trials", 8),  # each trial beats the one before
])
def test_no_improvement_stops_a_flat_objective_and_not_an_improving_one(
        workdir: Path, trainer: str, stopped: str, complete: int) -> None:
    result = hposweep("run", fake_config(workdir), f"train.trainer=compute_trainers:{trainer}",
                      "study.stop_when.no_improvement=3", "study.max_trials=8",
                      "mlflow.enabled=false", "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json()["backbones"][0]
    assert (summary["stopped"], summary["n_complete"]) == (stopped, complete)
    if stopped == "no_improvement":
        assert "the last 3 finished trials did not beat trial 0" in summary["stop_message"]


def test_a_run_a_spent_budget_stops_at_once_leaves_the_parent_run_as_it_was(workdir: Path) -> None:
    """Nothing new to log (the budget was spent before this run): the parent run the run
    reopened must not stay RUNNING."""
    from tests.helpers import mlflow_client, runs_by_kind

    config = fake_config(workdir)
    assert hposweep("run", config, "study.max_trials=2").exit_code == 0
    again = hposweep("run", config, "study.max_trials=4", "study.budget.trial_hours=1e-9")
    assert again.exit_code == 0 and "study.budget.trial_hours=1e-09 is spent" in again.stdout, \
        again.stdout + again.stderr
    (parent,) = runs_by_kind(mlflow_client(workdir / "outputs"), "fake")["parent"]
    assert parent.info.status == "FINISHED"
    dry = hposweep("run", config, "study.max_trials=4", "study.budget.trial_hours=1e-9",
                   "--dry-run")
    assert dry.exit_code == 0
    assert ("fake: would start no trial of study 'fake_fake': study.budget.trial_hours=1e-09 "
            "is spent") in dry.stdout, dry.stdout
