"""A sweep's memory from trial to trial, and out of GPU memory as a policy, through a real
sweep (in process, real study and MLflow store; out of memory injected on CPU at a chosen
batch size): no model or optimizer of a finished trial stays alive, whatever way it ended;
a trial that ran out of memory records what it trained with; a trial that cannot fit
fails with the reason and the sweep goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from hposweep.training import micro_batch
from tests.conftest import SMOKE
from tests.helpers import hposweep, load_study, mlflow_client, runs_by_kind

OVERRIDES = ["train.trainer=memory_trainers:each_way_out", "study.max_trials=3", "study.max_failures=4",
             "k_fold.n_splits=2", "train.epochs=1", "data.synthetic.sentences=40",
             "study.pruner.name=none", "search_space.batch_size.choices=[16]",
             "search_space.learning_rate.low=0.001", "search_space.learning_rate.high=0.002"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import os

    import memory_trainers

    workdir = tmp_path_factory.mktemp("memory")
    cwd = Path.cwd()
    os.chdir(workdir)
    micro_batch._TOO_BIG.clear()
    try:
        result = hposweep("run", SMOKE, *OVERRIDES, "--verbose")  # -v keeps tracebacks to print
        assert result.exit_code == 0, result.stdout + result.stderr
        memory_trainers.ALIVE_BEFORE_EACH_FOLD.append((-1, memory_trainers.alive()))
    finally:
        os.chdir(cwd)
        micro_batch._TOO_BIG.clear()
    return workdir


def test_no_model_or_optimizer_of_a_finished_trial_stays_alive(sweep: Path) -> None:
    import memory_trainers

    counts = memory_trainers.ALIVE_BEFORE_EACH_FOLD
    assert {trial for trial, _ in counts} == {0, 1, 2, 3, 4, 5, -1}
    assert all(alive == 0 for _, alive in counts), counts


def test_each_trial_ended_its_own_way(sweep: Path) -> None:
    trials = load_study(sweep / "outputs", "smoke_tiny-bert").trials
    states = {t.number: t.state.name for t in trials}
    assert states == {0: "COMPLETE", 1: "PRUNED", 2: "FAIL", 3: "FAIL", 4: "FAIL",
                      5: "COMPLETE"}
    reasons = {t.number: t.user_attrs.get("fail_reason") for t in trials}
    assert reasons[2] == "training loss is nan in epoch 1"
    assert reasons[3] == "out of GPU memory at batch_size=1 on cpu"
    assert reasons[4] == "out of GPU memory at batch_size=16 on cpu", "a custom trainer's own"


def test_a_trial_that_ran_out_of_memory_records_what_it_trained_with(sweep: Path) -> None:
    """Trial 0: passes of 16, 8 and 4 ran out (the evaluation's are twice the training's),
    2 fit; trial 3 started below 4 (at 2), then ran out at 2 and 1; trial 5 started at 1,
    below what ran out, with no retry."""
    trials = {t.number: t for t in load_study(sweep / "outputs", "smoke_tiny-bert").trials}
    assert {k: trials[0].user_attrs.get(k) for k in ("micro_batch_size", "oom_retries")} == {
        "micro_batch_size": 2, "oom_retries": 3}
    assert trials[3].user_attrs["oom_retries"] == 2
    assert trials[5].user_attrs["micro_batch_size"] == 1 and "oom_retries" not in trials[5].user_attrs
    assert "micro_batch_size" not in trials[1].user_attrs, "a batch that fits is not recorded"
    runs = {int(r.data.tags["trial_number"]): r
            for r in runs_by_kind(mlflow_client(sweep / "outputs"), "hposweep-smoke")["trial"]}
    assert runs[0].data.metrics["micro_batch_size"] == 2 and runs[0].data.metrics["oom_retries"] == 3
    assert runs[0].data.params["batch_size"] == "16", "the sampled batch is unchanged"


def test_each_trial_records_its_device(sweep: Path) -> None:
    """A custom trainer's device is its own: only the built-in trainer's is recorded."""
    trial = load_study(sweep / "outputs", "smoke_tiny-bert").trials[0]
    from tests.helpers import device_of

    assert device_of(trial) == {}
