"""Out of GPU memory is a policy: the per-step batch shrinks, the effective batch does not.

A trial's ``batch_size`` is the effective batch (a sampled hyperparameter). The built-in
trainer runs each batch as ``batch_size / micro`` forward/backward passes of ``micro``
sequences and steps once, so the gradient, the step count and the batch order do not
depend on ``micro``. When a pass runs out of memory the fold starts again (from its last
resume state, or from scratch) with the next smaller divisor of ``batch_size`` at most
half the last ``micro``, down to 1. The smallest size that ran out of memory is remembered
per device and model in this process: a later fold or trial starts below it.
"""

from __future__ import annotations

# (device, backbone) -> the smallest per-step batch that ran out of memory in this process.
_TOO_BIG: dict[tuple[str, str], int] = {}


def _largest_divisor(batch_size: int, at_most: int) -> int:
    return max(d for d in range(1, max(1, at_most) + 1) if batch_size % d == 0)


def first_micro_batch(batch_size: int, device: str, backbone: str) -> int:
    """The per-step batch a fold of ``batch_size`` starts with: all of it, unless a size
    this large already ran out of memory on this device and model."""
    too_big = _TOO_BIG.get((device, backbone))
    if too_big is None or batch_size < too_big:
        return batch_size
    return _largest_divisor(batch_size, too_big - 1)


def after_out_of_memory(batch_size: int, micro: int, device: str, backbone: str) -> int | None:
    """Remember that ``micro`` ran out of memory; the next per-step batch to try, or None
    when ``micro`` was already 1."""
    key = (device, backbone)
    _TOO_BIG[key] = min(micro, _TOO_BIG.get(key, micro))
    return _largest_divisor(batch_size, micro // 2) if micro > 1 else None


def split(batch: dict[str, object], micro: int) -> list[dict[str, object]]:
    """``batch``'s tensors cut into consecutive slices of ``micro`` rows (the batch itself
    when it fits in one)."""
    rows = len(batch["input_ids"])  # type: ignore[arg-type]
    if rows <= micro:
        return [batch]
    return [{key: value[start : start + micro] for key, value in batch.items()}  # type: ignore[index]
            for start in range(0, rows, micro)]
