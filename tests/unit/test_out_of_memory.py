"""Out of GPU memory is a policy: the fold starts again with half the per-step batch and
twice the passes per batch (the effective batch, a sampled hyperparameter, unchanged),
down to 1, then the trial fails with a reason. Injected on CPU with the fault point that
raises torch's out-of-memory error when a forward pass gets more than N sequences."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hposweep._testing.faults import OOM_ENV
from hposweep.api import TrialFailed
from hposweep.training import micro_batch
from hposweep.training.builtin import train
from hposweep.training.micro_batch import after_out_of_memory, first_micro_batch, split
from tests.unit.test_builtin_trainer import context, setup

PARAMS = {"learning_rate": 5e-3, "batch_size": 16, "dropout": 0.0}  # dropout masks differ by pass size


@pytest.fixture(autouse=True)
def fresh_memory() -> Iterator[None]:
    """Each test starts in a process that has not run out of memory yet."""
    micro_batch._TOO_BIG.clear()
    yield
    micro_batch._TOO_BIG.clear()


def recording_context(cfg, records: dict, warnings: list | None = None):
    ctx = context(cfg, warnings=warnings)
    ctx.recorded = records
    return ctx


def test_out_of_memory_halves_the_per_step_batch_and_trains_the_same_effective_batch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, fold = setup("train.epochs=2")
    expected = train(PARAMS, fold, context(cfg))  # no limit: 16 sequences per pass
    # Training passes of 16 run out of memory; at 8, the evaluation's passes of 16 (twice the
    # training's) do; at 4 both fit.
    monkeypatch.setenv(OOM_ENV, "8")
    records: dict = {}
    warnings: list[str] = []
    got = train(PARAMS, fold, recording_context(cfg, records, warnings))
    assert records == {"oom_retries": 2, "micro_batch_size": 4}
    assert len(warnings) == 2 and "out of GPU memory at batch_size=16 on cpu" in warnings[0]
    assert "4 passes of 4 per batch of 16 (the effective batch is unchanged)" in warnings[1]
    # The same batches, the same steps, the same schedule: only float summation order differs.
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key


def test_at_a_per_step_batch_of_one_the_trial_fails_with_the_reason(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, fold = setup()
    monkeypatch.setenv(OOM_ENV, "0")
    records: dict = {}
    with pytest.raises(TrialFailed, match=r"^out of GPU memory at batch_size=1 on cpu$"):
        train({**PARAMS, "batch_size": 12}, fold, recording_context(cfg, records))
    assert records == {"oom_retries": 4}  # 12, 6, 3, 1


def test_a_later_trial_starts_from_the_size_that_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, fold = setup()
    monkeypatch.setenv(OOM_ENV, "8")
    train(PARAMS, fold, recording_context(cfg, {}))  # 16 and 8 (its evaluation) run out
    forwards: list[int] = []
    from hposweep.training import builtin

    original = builtin._summed_loss

    def counting(model, batch, *args):
        forwards.append(len(batch["labels"]))
        return original(model, batch, *args)

    monkeypatch.setattr(builtin, "_summed_loss", counting)
    records: dict = {}
    ctx = recording_context(cfg, records)
    ctx.trial_number = 1
    train({**PARAMS, "batch_size": 32}, fold, ctx)
    assert records == {"micro_batch_size": 4}, "no out-of-memory again: it started at 4"
    assert max(forwards) == 4
    forwards.clear()
    train({**PARAMS, "batch_size": 4}, fold, recording_context(cfg, records))
    assert max(forwards) == 4, "a smaller batch than the one that ran out runs whole"


@pytest.mark.parametrize(("batch_size", "sizes"), [(16, [16, 8, 4, 2, 1]), (12, [12, 6, 3, 1]),
                                                   (5, [5, 1]), (1, [1])])
def test_each_per_step_batch_divides_the_batch(batch_size: int, sizes: list[int]) -> None:
    tried = [first_micro_batch(batch_size, "cuda:0", "m")]
    while (smaller := after_out_of_memory(batch_size, tried[-1], "cuda:0", "m")) is not None:
        tried.append(smaller)
    assert tried == sizes


def test_what_ran_out_of_memory_is_remembered_per_device_and_model() -> None:
    after_out_of_memory(32, 32, "cuda:0", "bert")
    assert first_micro_batch(64, "cuda:0", "bert") == 16
    assert first_micro_batch(48, "cuda:0", "bert") == 24
    assert first_micro_batch(32, "cuda:0", "bert") == 16
    assert first_micro_batch(24, "cuda:0", "bert") == 24
    assert first_micro_batch(64, "cuda:1", "bert") == 64
    assert first_micro_batch(64, "cuda:0", "roberta") == 64


def test_split_cuts_every_tensor_into_consecutive_rows() -> None:
    import torch

    batch = {"input_ids": torch.arange(10).reshape(5, 2), "labels": torch.arange(5)}
    parts = split(batch, 2)
    assert [p["labels"].tolist() for p in parts] == [[0, 1], [2, 3], [4]]
    assert torch.equal(torch.cat([p["input_ids"] for p in parts]), batch["input_ids"])
    assert split(batch, 5) == [batch]
