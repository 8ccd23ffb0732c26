"""Batches for the built-in trainer: shuffled, or grouped by length (less padding).

Both draw from one seeded ``torch.Generator`` per fold, so an epoch's batch order is a
function of the generator's state at its start: the resume state saves that state and
an interrupted epoch replays the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# Sequences are sorted by length within windows of this many batches (transformers'
# LengthGroupedSampler uses 50): long enough to group similar lengths, short enough that
# the batches of one epoch still mix the whole data set.
MEGA_BATCH = 50


class LengthGroupedBatches:
    """Batch sampler: shuffle, sort each window of ``MEGA_BATCH`` batches by length
    (longest first), cut into batches, then shuffle the batches' order."""

    def __init__(self, lengths: list[int], batch_size: int, generator: Any) -> None:
        self.lengths = lengths
        self.batch_size = batch_size
        self.generator = generator

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        import torch

        order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        window = self.batch_size * MEGA_BATCH
        batches = []
        for start in range(0, len(order), window):
            chunk = sorted(order[start : start + window], key=lambda i: -self.lengths[i])
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        for index in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[index]


def padding_fraction(batches: list[list[int]], lengths: list[int]) -> float:
    """The share of padded positions in ``batches`` (each padded to its longest sequence)."""
    padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)
    return 1 - sum(lengths[i] for batch in batches for i in batch) / padded


def loader_workers(device: str) -> dict[str, Any]:
    """On CUDA, 2 worker processes collate the next batches while the GPU trains, into
    pinned memory (copied with ``non_blocking``); on CPU the collation runs in the training
    process (workers would take the cores it trains on)."""
    if device.startswith("cuda"):
        return {"num_workers": 2, "pin_memory": True, "persistent_workers": True}
    return {}


def make_loader(dataset: list[dict[str, Any]], batch_size: int, generator: Any, collate: Any,
                group_by_length: bool, device: str, worker_seed: int = 0) -> Any:
    """The fold's training DataLoader.

    The DataLoader draws a seed from its generator once per iterator: without worker
    processes that is once per epoch, at its start, so ``generator`` serves (the draw is
    part of the epoch's replayed state). Persistent workers make it once per fold: the
    seed then comes from a generator of its own (``worker_seed``), else a resumed process
    would draw it again and shift the resumed epoch's batch order."""
    import torch

    workers = loader_workers(device)
    own = torch.Generator().manual_seed(worker_seed) if workers else generator
    options = {"collate_fn": collate, "generator": own, **workers}
    if group_by_length:
        sampler = LengthGroupedBatches([len(row["input_ids"]) for row in dataset], batch_size,
                                       generator)
        return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, **options)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size,
        sampler=torch.utils.data.RandomSampler(dataset, generator=generator), **options)
