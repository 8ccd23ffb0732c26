"""``data.group_by_length``: batches of similar length pad less, and the batch order is
the same for the same seed (and replayed from a saved generator state)."""

from __future__ import annotations

import pytest
import torch

from hposweep.training.batching import LengthGroupedBatches, padding_fraction
from hposweep.training.builtin import prepare, train
from tests.unit.test_builtin_trainer import context, setup

GROUPED = ["data.synthetic.sentences=200", "data.group_by_length=true"]


def epoch_batches(loader) -> list[list[int]]:
    """The indices of each batch of one epoch (the loader's own sampler, drawn for real)."""
    sampler = loader.batch_sampler
    return [list(batch) for batch in sampler]


def test_grouping_by_length_pads_less_than_shuffling() -> None:
    cfg, fold = setup(*GROUPED)
    grouped = prepare({"batch_size": 8}, fold, context(cfg))
    plain_cfg, _ = setup("data.synthetic.sentences=200")
    plain = prepare({"batch_size": 8}, fold, context(plain_cfg))
    lengths = [len(row["input_ids"]) for row in grouped.loader.dataset]
    assert isinstance(grouped.loader.batch_sampler, LengthGroupedBatches)
    grouped_batches, plain_batches = epoch_batches(grouped.loader), epoch_batches(plain.loader)
    for batches in (grouped_batches, plain_batches):  # every sequence once per epoch
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    saved, shuffled = padding_fraction(grouped_batches, lengths), padding_fraction(plain_batches, lengths)
    assert shuffled > 0.1 and saved < shuffled / 2, (saved, shuffled)


def test_grouped_batches_are_reproducible_under_the_seed_and_differ_across_epochs() -> None:
    lengths = [(i * 7) % 23 + 1 for i in range(300)]

    def epochs(seed: int) -> list[list[list[int]]]:
        sampler = LengthGroupedBatches(lengths, 8, torch.Generator().manual_seed(seed))
        return [list(sampler), list(sampler)]

    assert epochs(1) == epochs(1)
    assert epochs(1) != epochs(2)
    first, second = epochs(1)
    assert first != second, "each epoch draws a new order"
    generator = torch.Generator().manual_seed(1)
    sampler = LengthGroupedBatches(lengths, 8, generator)
    list(sampler)
    start = generator.get_state()
    expected = list(sampler)
    generator.set_state(start)
    assert list(sampler) == expected, "a saved generator state replays the epoch"


def test_training_grouped_by_length_is_reproducible() -> None:
    cfg, fold = setup(*GROUPED)
    params = {"learning_rate": 5e-3, "batch_size": 8}
    first = train(params, fold, context(cfg))
    assert first == train(params, fold, context(cfg))
    plain_cfg, _ = setup("data.synthetic.sentences=200")
    assert first != train(params, fold, context(plain_cfg)), "grouping changed no batch"


@pytest.mark.slow  # starts processes (the loader's workers)
def test_a_resumed_epoch_with_persistent_loader_workers_replays_the_same_batches() -> None:
    """On CUDA the loader has persistent worker processes: their seed is drawn once per
    fold, not per epoch. An epoch's batch order must still be a function of the generator
    state at its start only, as a resumed process (a new loader) replays it."""
    import warnings

    from hposweep.training.batching import make_loader

    dataset = list(range(40))

    def loader(generator: torch.Generator):  # pinning warns without a GPU, and is skipped
        return make_loader(dataset, 4, generator, torch.tensor, False, "cuda")

    running = torch.Generator().manual_seed(0)
    with warnings.catch_warnings():
        first = loader(running)
        warnings.simplefilter("ignore")
        [b.tolist() for b in first]  # epoch 0
        epoch_1_start = running.get_state()
        epoch_1 = [b.tolist() for b in first]
        resumed = torch.Generator()
        resumed.set_state(epoch_1_start)
        replayed = [b.tolist() for b in loader(resumed)]
    assert first.num_workers == 2 and first.persistent_workers
    assert replayed == epoch_1
