"""What a model costs to deploy, reported by the built-in trainer next to its quality
metrics, so that a sweep can trade one against the other (``study.objectives``) or bound
it (``study.constraints``):

- ``n_parameters``: parameters, in millions;
- ``checkpoint_mb``: the weights' size as ``model.safetensors`` holds them (every tensor
  of the state dict, shared ones once), in MB (10^6 bytes);
- ``latency_ms``: the median wall time of one forward pass over one validation batch of
  ``batch_size`` examples on the trial's device (on CUDA timed with CUDA events), and
  ``latency_ms_iqr``, the interquartile range of those passes. Warm-up passes run first,
  untimed, until two in a row agree within 10 %: the first passes of a process pay
  one-time costs (kernel selection, allocator growth) that would make its first trial an
  outlier.

Only the ones a study names (as an objective or in a constraint) are measured: the
others' sweeps stay as they were (``latency_ms`` is a timing, not reproducible).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

WARMUP_MIN = 3  # untimed passes, at least (allocations, kernel selection, caches)
WARMUP_MAX = 30  # ... and at most, when the passes never settle
WARMUP_AGREEMENT = 0.10  # warm-up ends once a pass is within this share of the one before
TIMED = 21  # timed passes: their median and interquartile range are reported


def requested(cfg: Any) -> list[str]:
    """The cost metrics the study's objectives and constraints name."""
    from hposweep.config.schema import BUILTIN_COST_METRICS
    from hposweep.objectives.spec import required_metrics

    return [m for m in required_metrics(cfg) if m in BUILTIN_COST_METRICS]


def cost_metrics(model: Any, batch: dict[str, Any], device: str,
                 names: list[str]) -> dict[str, float]:
    """The metrics of ``names`` (``latency_ms`` brings ``latency_ms_iqr`` with it)."""
    measure: dict[str, Callable[[], dict[str, float]]] = {
        "n_parameters": lambda: {"n_parameters": n_parameters(model)},
        "checkpoint_mb": lambda: {"checkpoint_mb": checkpoint_mb(model)},
        "latency_ms": lambda: latency_ms(model, batch, device)}
    return {key: value for name in names for key, value in measure[name]().items()}


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
               clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """``latency_ms`` and ``latency_ms_iqr`` of forward passes over ``batch`` (inputs only,
    no loss); ``clock`` times the passes off CUDA."""
    import torch

    inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
    model.eval()
    with torch.inference_mode():
        times = timed_passes(lambda: model(**inputs), pass_timer(device, clock))
    q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return {"latency_ms": median, "latency_ms_iqr": q3 - q1}


def timed_passes(forward: Callable[[], Any], time_pass: Callable[[Callable[[], Any]], float]
                 ) -> list[float]:
    """Warm-up passes (untimed: at least ``WARMUP_MIN``, until one is within
    ``WARMUP_AGREEMENT`` of the one before, at most ``WARMUP_MAX``), then ``TIMED`` passes'
    times in ms."""
    previous = None
    for count in range(1, WARMUP_MAX + 1):
        elapsed = time_pass(forward)
        settled = previous is not None and abs(elapsed - previous) <= WARMUP_AGREEMENT * previous
        if count >= WARMUP_MIN and settled:
            break
        previous = elapsed
    return [time_pass(forward) for _ in range(TIMED)]


def pass_timer(device: str, clock: Callable[[], float]
               ) -> Callable[[Callable[[], Any]], float]:
    """How one pass is timed on ``device``: CUDA events on the GPU's own stream, else the
    clock around the pass, synchronised with the device (MPS) so its kernels are counted."""
    import torch

    from hposweep.training.device import device_kind

    kind = device_kind(device)
    if kind == "cuda":
        def on_gpu(forward: Callable[[], Any]) -> float:
            with torch.cuda.device(device):
                start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
                start.record()
                forward()
                end.record()
                end.synchronize()
                return float(start.elapsed_time(end))

        return on_gpu
    synchronize = torch.mps.synchronize if kind == "mps" else (lambda: None)

    def on_clock(forward: Callable[[], Any]) -> float:
        synchronize()
        start = clock()
        forward()
        synchronize()
        return (clock() - start) * 1000

    return on_clock
