"""``--workers K`` and devices: worker ``i`` sees GPU ``i mod G`` only, more workers than
GPUs share them and are told so, ``train.device: cuda:N`` is refused (a worker's device
is its own), and threads follow the cores this process may use, not the machine's."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hposweep.workers.processes import gpu_sharing, worker_environments
from tests.conftest import SMOKE
from tests.helpers import hposweep


def test_worker_i_sees_gpu_i_mod_g(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,7")  # the GPUs this machine lends us
    envs = worker_environments(5, "cuda")
    assert [env["CUDA_VISIBLE_DEVICES"] for env in envs] == ["4", "7", "4", "7", "4"]
    assert [env["CUDA_VISIBLE_DEVICES"] for env in worker_environments(2, "cpu")] == ["4,7"] * 2, \
        "train.device: cpu leaves the GPUs as they were"


def test_more_workers_than_gpus_says_which_share() -> None:
    assert gpu_sharing(2, ["4", "7"]) is None
    assert gpu_sharing(3, []) is None  # no GPU: nothing to share
    assert gpu_sharing(3, ["4", "7"]) == (
        "--workers 3 on 2 GPUs: workers share them (GPU 4: workers 1, 3, GPU 7: workers 2); "
        "each trial's memory must fit beside the others'")


@pytest.fixture
def one_core() -> Iterator[None]:
    """This process confined to one of its cores, as Slurm or taskset would."""
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        pytest.skip("this process may use one core only: nothing to confine")
    os.sched_setaffinity(0, {min(allowed)})
    yield
    os.sched_setaffinity(0, allowed)


def test_threads_per_worker_follow_the_cores_this_process_may_use(one_core: None) -> None:
    assert worker_environments(1, "cpu")[0]["OMP_NUM_THREADS"] == "1"


def test_a_cuda_index_with_workers_is_exit_2_before_any_worker_starts(workdir: Path) -> None:
    result = hposweep("run", SMOKE, "train.device=cuda:1", "--workers", "2")
    assert result.exit_code == 2
    assert result.stderr == (
        "error: train.device: cuda:1 with --workers 2: each worker trains on a GPU of its own "
        "(worker i gets GPU i mod the GPUs visible); use train.device=cuda or auto\n")
    assert not (workdir / "outputs" / "hpo" / "workers").exists(), "no worker started"
