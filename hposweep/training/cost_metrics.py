"""What a model costs to deploy, reported by the built-in trainer next to its quality
metrics, so that a sweep can trade one against the other (``study.objectives``) or bound
it (``study.constraints``):

- ``n_parameters``: parameters, in millions;
- ``checkpoint_mb``: the weights' size as ``model.safetensors`` holds them (every tensor
  of the state dict, shared ones once), in MB (10^6 bytes);
- ``latency_ms``: the median wall time of one forward pass over one validation batch of
  ``batch_size`` examples on the trial's device, measured after warm-up passes (on CUDA
  each pass is synchronised before the clock is read).

Only the ones a study names (as an objective or in a constraint) are measured: the
others' sweeps stay as they were (``latency_ms`` is a timing, not reproducible).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

WARMUP = 2  # passes that are not timed (allocations, kernel selection, caches)
TIMED = 5  # timed passes; their median is reported


def requested(cfg: Any) -> list[str]:
    """The cost metrics the study's objectives and constraints name."""
    from hposweep.config.schema import BUILTIN_COST_METRICS
    from hposweep.objectives.spec import required_metrics

    return [m for m in required_metrics(cfg) if m in BUILTIN_COST_METRICS]


def cost_metrics(model: Any, batch: dict[str, Any], device: str,
                 names: list[str]) -> dict[str, float]:
    measure = {"n_parameters": lambda: n_parameters(model),
               "checkpoint_mb": lambda: checkpoint_mb(model),
               "latency_ms": lambda: latency_ms(model, batch, device)}
    return {name: measure[name]() for name in names}


def n_parameters(model: Any) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def checkpoint_mb(model: Any) -> float:
    seen: set[int] = set()
    size = 0
    for tensor in model.state_dict().values():
        key = tensor.untyped_storage().data_ptr()
        if key in seen:
            continue  # tied weights are saved once
        seen.add(key)
        size += tensor.numel() * tensor.element_size()
    return size / 1e6


def latency_ms(model: Any, batch: dict[str, Any], device: str,
               clock: Callable[[], float] = time.perf_counter) -> float:
    """Median forward time of ``batch`` (inputs only, no loss) in milliseconds."""
    import torch

    inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
    synchronize = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    model.eval()
    times = []
    with torch.inference_mode():
        for i in range(WARMUP + TIMED):
            synchronize()
            start = clock()
            model(**inputs)
            synchronize()
            if i >= WARMUP:
                times.append((clock() - start) * 1000)
    return statistics.median(times)
