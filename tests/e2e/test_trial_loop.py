"""The trial loop under the faults that used to break its counts: kills in the window
between a trial's creation and its owner, before the parent run's id is stored, a worker
dying while the others finish, processes setting the sweep up at the same instant
(forced with a barrier), failed trials, retried trials' steps, and bugs of our own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import (
    checkpoint_dirs,
    fake_config,
    hposweep,
    load_study,
    mlflow_client,
    process_env,
    runs_by_kind,
)

BIN = Path(sys.executable).parent
STUDY = "fake_fake"


def run(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "hposweep"), "run", str(fake_config(workdir)), *args],
                          cwd=workdir, env=process_env(**env), capture_output=True, text=True,
                          timeout=300)


def states(workdir: Path) -> list[str]:
    return [t.state.name for t in load_study(workdir / "outputs", STUDY).trials]


def assert_every_run_ended(workdir: Path) -> None:
    kinds = runs_by_kind(mlflow_client(workdir / "outputs"), "fake")
    assert len(kinds["parent"]) == 1, "one parent run"
    for run in [*kinds["parent"], *kinds["trial"], *kinds["fold"]]:
        assert run.info.status != "RUNNING", (run.info.run_name, run.data.tags)
    for run in kinds["trial"]:
        assert run.data.params["trial_number"] == run.data.tags["trial_number"]


def test_a_kill_between_taking_a_queued_trial_and_recording_its_owner_is_recovered(
        workdir: Path) -> None:
    """A queued trial (here enqueued) is taken as ``study.ask`` takes it, then its owner is
    written: a kill in between leaves it RUNNING with no owner, under the study lock."""
    queued = "study.enqueue=[{x: 0.5}]"
    killed = run(workdir, "study.max_trials=3", queued, HPOSWEEP_KILL_AT="trial:asked")
    assert killed.returncode == -9
    (orphan,) = load_study(workdir / "outputs", STUDY).trials
    assert orphan.state.name == "RUNNING" and "hposweep.trial" not in orphan.user_attrs

    again = run(workdir, "study.max_trials=3", queued, "--json")

    assert again.returncode == 0, again.stderr
    assert "other workers are still running" not in again.stdout
    trials = load_study(workdir / "outputs", STUDY).trials
    assert trials[0].state.name == "FAIL"
    assert trials[0].user_attrs["fail_reason"] == "its process died as the trial was created"
    assert [t.state.name for t in trials[1:]] == ["COMPLETE"] * 3
    assert trials[1].user_attrs["retried_from"] == 0
    (parent,) = runs_by_kind(mlflow_client(workdir / "outputs"), "fake")["parent"]
    assert parent.info.status == "FINISHED"


def test_a_new_trial_is_created_with_its_owner_so_a_kill_right_after_is_recovered(
        workdir: Path) -> None:
    """A new trial and its owner are one write: no instant leaves it ownerless."""
    killed = run(workdir, "study.max_trials=2", HPOSWEEP_KILL_AT="trial:created")
    assert killed.returncode == -9
    (orphan,) = load_study(workdir / "outputs", STUDY).trials
    assert orphan.state.name == "RUNNING"
    owner = orphan.user_attrs["hposweep.trial"]["owner"]

    again = run(workdir, "study.max_trials=2")

    assert again.returncode == 0, again.stderr
    trials = load_study(workdir / "outputs", STUDY).trials
    assert trials[0].state.name == "FAIL"
    assert trials[0].user_attrs["fail_reason"] == (
        f"its process ({owner['pid']} on {owner['host']}) died")
    assert [t.state.name for t in trials[1:]] == ["COMPLETE"] * 2
    assert trials[1].user_attrs["retried_from"] == 0


def test_a_kill_before_the_parent_run_id_is_stored_reuses_that_parent(workdir: Path) -> None:
    killed = run(workdir, "study.max_trials=2", HPOSWEEP_KILL_AT="mlflow:parent-created")
    assert killed.returncode == -9
    (orphan,) = runs_by_kind(mlflow_client(workdir / "outputs"), "fake")["parent"]

    again = run(workdir, "study.max_trials=2", "--json")

    assert again.returncode == 0, again.stderr
    (parent,) = runs_by_kind(mlflow_client(workdir / "outputs"), "fake")["parent"]
    assert parent.info.run_id == orphan.info.run_id and parent.info.status == "FINISHED"
    assert again.stdout and json.loads(again.stdout)["backbones"][0][
        "mlflow_parent_run_id"] == parent.info.run_id


def test_a_workers_killed_trial_is_retried_and_every_run_ends_with_its_trial_number(
        workdir: Path) -> None:
    """Worker 1 of 2 dies in trial 1; its trial is retried (by the other worker when it
    dies before the other's end, else by the next run: which one is a matter of timing)
    and by the time the study completes every MLflow run the sweep started has ended."""
    sweep = ["study.max_trials=6", "k_fold.enabled=false", "train.trainer=fake_trainers:sleepy"]
    result = run(workdir, "--workers", "2", *sweep, HPOSWEEP_KILL_AT="trial1:fold0:epoch0")
    assert result.returncode == 0, result.stderr
    if states(workdir).count("COMPLETE") < 6:
        again = run(workdir, *sweep)
        assert again.returncode == 0, again.stderr

    study = load_study(workdir / "outputs", STUDY)
    finished = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(finished) == 6
    (dead,) = [t for t in study.trials if t.state.name == "FAIL"]
    assert dead.number == 1 and "died" in dead.user_attrs["fail_reason"]
    assert [t.user_attrs.get("retried_from") for t in finished].count(1) == 1
    assert_every_run_ended(workdir)


def test_workers_run_each_grid_point_once_a_killed_ones_included_then_end_the_study(
        workdir: Path) -> None:
    """A grid of 6 points, max_trials 10, 2 workers, one killed in trial 1: its point is
    retried (by the other worker or by the next run), no point runs twice, and the sweep
    ends with exit 0, saying the grid is used up, its MLflow runs all ended."""
    sweep = ["study.max_trials=10", "k_fold.enabled=false", "train.trainer=fake_trainers:sleepy",
             "study.sampler.name=grid", "search_space.x.step=0.2"]
    result = run(workdir, "--workers", "2", *sweep, HPOSWEEP_KILL_AT="trial1:fold0:epoch0")
    assert result.returncode == 0, result.stderr
    if states(workdir).count("COMPLETE") < 6:
        result = run(workdir, *sweep)
        assert result.returncode == 0, result.stderr
    assert "stopped early: the grid is exhausted (6 points)" in result.stdout

    trials = load_study(workdir / "outputs", STUDY).trials
    assert sorted(t.state.name for t in trials) == ["COMPLETE"] * 6 + ["FAIL"]
    xs = [t.params["x"] for t in trials if t.state.name == "COMPLETE"]
    assert sorted(xs) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], xs
    assert_every_run_ended(workdir)
    again = run(workdir, *sweep)
    assert again.returncode == 0 and len(load_study(workdir / "outputs", STUDY).trials) == 7


def barrier(tmp: Path, parties: int) -> dict[str, str]:
    directory = tmp / "barrier"
    directory.mkdir()
    return {"HPOSWEEP_BARRIER_AT": "setup", "HPOSWEEP_BARRIER_DIR": str(directory),
            "HPOSWEEP_BARRIER_PARTIES": str(parties)}


@pytest.mark.parametrize("attempt", range(3))
def test_workers_setting_up_together_agree_on_one_fresh_sweep(workdir: Path, attempt: int) -> None:
    result = run(workdir, "--workers", "2", "study.max_trials=4", **barrier(workdir, 2))

    assert result.returncode == 0, result.stderr
    study = load_study(workdir / "outputs", STUDY)
    run_id = study.user_attrs["hposweep.run_id"]
    dirs = checkpoint_dirs(workdir / "outputs", "fake")
    assert len(dirs) == 1 and run_id in dirs[0], dirs
    (parent,) = runs_by_kind(mlflow_client(workdir / "outputs"), "fake")["parent"]
    assert "hposweep.resumed" not in parent.data.tags
    assert parent.data.params["resumed_from_checkpoint"] == "False"
    assert states(workdir) == ["COMPLETE"] * 4, "no surplus trial"


def test_two_runs_started_at_once_never_train_the_same_parameters(workdir: Path) -> None:
    env = process_env(**barrier(workdir, 2))
    command = [str(BIN / "hposweep"), "run", str(fake_config(workdir)), "study.max_trials=8",
               "train.trainer=fake_trainers:sleepy", "k_fold.enabled=false"]
    procs = [subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""

    trials = load_study(workdir / "outputs", STUDY).trials
    xs = [t.params["x"] for t in trials if t.state.name == "COMPLETE"]
    assert len(xs) == 8 and len(set(xs)) == 8, xs
    owners = {t.user_attrs["hposweep.trial"]["owner"]["pid"] for t in trials}
    assert len(owners) == 2 and len(trials) == 8, "both ran trials, none surplus"


def test_a_single_process_sweep_is_reproducible(workdir: Path, tmp_path_factory) -> None:
    first = run(workdir, "study.max_trials=4", "--json")
    other = tmp_path_factory.mktemp("again")
    second = subprocess.run([str(BIN / "hposweep"), "run", str(fake_config(other)),
                             "study.max_trials=4", "--json", "mlflow.enabled=false"], cwd=other,
                            env=process_env(), capture_output=True, text=True, timeout=300)
    assert first.returncode == second.returncode == 0

    def xs(result: subprocess.CompletedProcess[str]) -> list[float]:
        return [t["params"]["x"] for t in json.loads(result.stdout)["backbones"][0]["trials"]]

    assert xs(first) == xs(second) and len(set(xs(first))) == 4


def test_failed_trials_are_replaced_until_max_trials_finished(workdir: Path) -> None:
    result = run(workdir, "study.max_trials=5", "study.max_failures=50", "--json",
                 "train.trainer=fake_trainers:fails_when_x_high")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["backbones"][0]
    assert summary["n_complete"] == 5 and summary["n_failed"] >= 1, summary
    assert states(workdir).count("COMPLETE") == 5


def test_an_always_failing_trainer_stops_at_max_failures_with_exit_1(workdir: Path) -> None:
    result = run(workdir, "study.max_trials=5", "study.max_failures=3",
                 "train.trainer=fake_trainers:always_fails")

    assert result.returncode == 1
    assert states(workdir) == ["FAIL"] * 3
    assert "stopped after 3 failed trials (study.max_failures=3)" in result.stderr


def test_a_retried_trial_reports_each_fold_at_that_folds_steps(workdir: Path) -> None:
    """Fold 0 finished, then a kill in fold 1: the retry reports fold 1's epochs at steps
    2 and 3 (fold * epochs + epoch), as an uninterrupted trial does, and fold 0, taken from
    its resume state, at its last step (1) with the value trial 0 reported there."""
    sweep = ["study.max_trials=1", "train.epochs=2", "train.trainer=fake_trainers:per_epoch"]
    assert run(workdir, *sweep, HPOSWEEP_KILL_AT="trial0:fold1:epoch0").returncode == -9

    again = run(workdir, *sweep)

    assert again.returncode == 0, again.stderr
    failed, retry = load_study(workdir / "outputs", STUDY).trials
    assert failed.intermediate_values.keys() == {0, 1, 2}
    assert retry.user_attrs["retried_from"] == 0
    assert retry.intermediate_values.keys() == {1, 2, 3}
    assert retry.intermediate_values[1] == failed.intermediate_values[1]


def test_a_bug_of_ours_is_an_internal_error_with_its_traceback_not_a_failed_trial(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hposweep.checkpoints.manager import CheckpointManager

    def broken(*args: object) -> None:  # a fault no real input can produce: a bug
        raise KeyError("simulated bug")

    monkeypatch.setattr(CheckpointManager, "trial_valued", broken)
    result = hposweep("run", fake_config(workdir), "study.max_trials=3")

    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "internal error in hposweep" in result.stderr
    assert "KeyError" in result.stderr
    (trial,) = load_study(workdir / "outputs", STUDY).trials
    assert trial.state.name == "FAIL"
    assert trial.user_attrs["fail_reason"].startswith("internal error: KeyError")


def test_an_empty_study_file_is_refused_and_nothing_is_touched(workdir: Path) -> None:
    assert run(workdir, "study.max_trials=2").returncode == 0
    root = workdir / "outputs" / "hpo"
    kept = checkpoint_dirs(workdir / "outputs", "fake")
    best = (root / "fake" / "best.json").read_text()
    (root / STUDY / "study.db").write_bytes(b"")

    again = run(workdir, "study.max_trials=4")

    assert again.returncode == 2
    assert "study file is empty (0 bytes)" in again.stderr and "--fresh" in again.stderr
    assert "Traceback" not in again.stderr
    assert checkpoint_dirs(workdir / "outputs", "fake") == kept
    assert (root / "fake" / "best.json").read_text() == best
    assert len(runs_by_kind(mlflow_client(workdir / "outputs"), "fake")["parent"]) == 1


def test_a_moved_data_file_with_the_same_content_still_resumes_the_study(workdir: Path) -> None:
    (workdir / "a").mkdir()
    data = workdir / "a" / "train.conll"
    data.write_text("".join(f"w{i}\tO\nx\tB-PER\n\n" for i in range(20)))
    source = ["data.synthetic=null", f"data.train={data}"]
    assert run(workdir, "study.max_trials=2", *source).returncode == 0
    moved = workdir / "b" / "train.conll"
    moved.parent.mkdir()
    data.rename(moved)

    again = run(workdir, "study.max_trials=3", "data.synthetic=null", f"data.train={moved}")

    assert again.returncode == 0, again.stderr
    assert states(workdir) == ["COMPLETE"] * 3
    moved.write_text(moved.read_text() + "extra\tO\n\n")
    changed = run(workdir, "study.max_trials=4", "data.synthetic=null", f"data.train={moved}")
    assert changed.returncode == 2 and "data.train" in changed.stderr


def test_a_trial_failed_meanwhile_by_another_worker_is_dropped_and_the_sweep_goes_on(
        workdir: Path) -> None:
    result = run(workdir, "study.max_trials=3", "k_fold.enabled=false",
                 "train.trainer=fake_trainers:failed_meanwhile_by_another_worker")

    assert result.returncode == 0, result.stderr
    assert "trial 0 was failed by another worker while it ran" in result.stderr
    assert "Traceback" not in result.stderr
    assert states(workdir) == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
