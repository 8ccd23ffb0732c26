"""What the trial loop writes and reads per trial beyond what Optuna and MLflow need: the
heartbeat, the stale-trial check, the best-checkpoint decision and the MLflow imports.
Each is counted or ordered here (the time they cost is measured in ``benchmarks/``)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import optuna
import pytest

from tests.helpers import fake_config, hposweep, load_study, process_env

NO_KFOLD = ["k_fold.enabled=false", "mlflow.enabled=false"]


def test_each_trial_beats_once_as_it_starts_from_its_own_thread(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first heartbeat is written by the thread that runs the trial, before its
    writes: a heartbeat thread writing at that moment waits on SQLite's write lock with
    them. Trials shorter than the interval beat only that once."""
    beats: list[tuple[int, bool]] = []
    record = optuna.storages.RDBStorage.record_heartbeat

    def spy(storage: Any, trial_id: int) -> None:
        beats.append((trial_id, threading.current_thread() is threading.main_thread()))
        record(storage, trial_id)

    monkeypatch.setattr(optuna.storages.RDBStorage, "record_heartbeat", spy)
    result = hposweep("run", fake_config(workdir), "study.max_trials=3", *NO_KFOLD)

    assert result.exit_code == 0, result.stderr
    trials = load_study(workdir / "outputs", "fake_fake").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert [on_main for _, on_main in beats] == [True] * 3
    assert len({trial_id for trial_id, _ in beats}) == 3


def test_other_hosts_stale_trials_are_looked_for_once_per_heartbeat_interval(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial turns stale a grace period after its last beat, and beats come once an
    interval: the loop looks once per interval (here: once in a sweep shorter than it),
    plus once as the sweep ends, to tell whether other workers still run trials."""
    checks: list[int] = []
    fail_stale = optuna.storages.fail_stale_trials

    def spy(study: Any) -> None:
        checks.append(len(study.get_trials(deepcopy=False)))
        fail_stale(study)

    monkeypatch.setattr(optuna.storages, "fail_stale_trials", spy)
    result = hposweep("run", fake_config(workdir), "study.max_trials=4",
                      "study.heartbeat_interval=600", *NO_KFOLD)

    assert result.exit_code == 0, result.stderr
    assert checks == [0, 4]  # before the first trial, and at the end


@pytest.mark.parametrize(("trainer", "decided"), [
    ("no_op", []),  # saves nothing
    ("quadratic", [0, 1, 2]),  # the positive control: saves a checkpoint every trial
])
def test_only_a_trial_that_saved_a_checkpoint_costs_a_best_decision(
        workdir: Path, monkeypatch: pytest.MonkeyPatch, trainer: str, decided: list[int]) -> None:
    """With best-only checkpoints, a trial with nothing staged cannot become the kept
    best: the study's best value is not read to decide it. A trial that staged one is
    decided on (the study's best value read)."""
    from hposweep.sweep.backbone import BackboneSweep

    reads: list[int] = []
    best_other = BackboneSweep._best_other_value

    def spy(sweep: BackboneSweep, number: int) -> list[float]:
        reads.append(number)
        return best_other(sweep, number)

    monkeypatch.setattr(BackboneSweep, "_best_other_value", spy)
    result = hposweep("run", fake_config(workdir), "study.max_trials=3",
                      f"train.trainer=fake_trainers:{trainer}", *NO_KFOLD)

    assert result.exit_code == 0, result.stderr
    trials = load_study(workdir / "outputs", "fake_fake").trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert sorted(set(reads)) == decided


def test_mlflow_is_imported_before_the_study_lock_is_taken(workdir: Path) -> None:
    """Workers starting together take the study lock one after another: MLflow's
    seconds of imports happen before it, so that none of them is spent holding it."""
    script = (
        "import sys\n"
        "from hposweep.sweep import backbone\n"
        "taken = backbone.study_lock\n"
        "def spy(*args):\n"
        "    print('STORE-IMPORTED', 'mlflow.store.tracking.sqlalchemy_store' in sys.modules)\n"
        "    return taken(*args)\n"
        "backbone.study_lock = spy\n"
        "from hposweep.cli import main\n"
        f"sys.argv = ['hposweep', 'run', {str(fake_config(workdir))!r}, 'study.max_trials=1',\n"
        "            'k_fold.enabled=false']\n"
        "main()\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=workdir, env=process_env(),
                          capture_output=True, text=True, timeout=300)

    assert proc.returncode == 0, proc.stderr
    assert "STORE-IMPORTED True" in proc.stdout
