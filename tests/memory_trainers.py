"""A trainer that runs the built-in one and counts, before each fold, the models and
optimizers of earlier folds still alive (weak references, garbage collected first): any
that a finished trial left behind (a kept exception, a cached setup, a closure) shows.

Trial by trial it takes another way out of the built-in loop: 0 runs out of memory at
passes above 4 sequences and completes with smaller per-step batches, 1 is pruned, 2
fails (its loss goes NaN), 3 runs out of memory at any size and fails, 4 (as a custom
trainer would) raises torch's out-of-memory error itself; the rest complete.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import weakref
from typing import Any

from hposweep._testing.faults import OOM_ENV
from hposweep.training import builtin

ALIVE_BEFORE_EACH_FOLD: list[tuple[int, int]] = []  # (trial, models and optimizers alive)
_MADE: list[weakref.ref[Any]] = []  # every model and optimizer a fold made


def _watched_prepare(*args: Any, **kwargs: Any) -> builtin.Setup:
    s = _prepare(*args, **kwargs)
    _MADE.extend([weakref.ref(s.model), weakref.ref(s.optimizer)])
    return s


_prepare = builtin.prepare
builtin.prepare = _watched_prepare  # observes only: what it returns is the trainer's own


def alive() -> int:
    gc.collect()
    return sum(ref() is not None for ref in _MADE)


def each_way_out(params, data, ctx):
    ALIVE_BEFORE_EACH_FOLD.append((ctx.trial_number, alive()))
    n = ctx.trial_number
    if n == 1:
        ctx = dataclasses.replace(ctx, _should_prune=lambda: True)
    if n == 2:
        params = {**params, "learning_rate": 1e6}
    if n == 4:
        import torch

        model = torch.nn.Linear(4, 4)  # held by the frame the error carries
        _MADE.append(weakref.ref(model))
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    limit = {0: "4", 3: "0"}.get(n)
    if limit is None:
        return builtin.train(params, data, ctx)
    os.environ[OOM_ENV] = limit
    try:
        return builtin.train(params, data, ctx)
    finally:
        del os.environ[OOM_ENV]
