"""The device a trial trains on: which one, how it is set up, its memory, and which of its
errors mean what.

Nothing here imports torch unless the device needs it (a custom trainer may not use torch
at all): ``resolve_device`` of an explicit device, the error tests of a process that never
imported torch, and the memory calls on CPU cost nothing.
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Any

# Messages of CUDA errors after which the process's CUDA context is unusable: every later
# kernel fails too, whatever the trial's hyperparameters.
FATAL_CUDA_ERRORS = ("device-side assert", "illegal memory access", "illegal instruction",
                     "unspecified launch failure", "misaligned address", "CUDA error: an illegal")
# Tensor cores' bfloat16 arrived with compute capability 8.0 (Ampere); before it torch
# emulates bf16 (``is_bf16_supported`` counts that), slower than fp16.
NATIVE_BF16_CAPABILITY = (8, 0)


def resolve_device(requested: str) -> str:
    """``train.device`` as a device name: ``auto`` is ``cuda`` when a GPU is visible."""
    if requested != "auto":
        return requested  # no torch import: a custom trainer may not use torch at all
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def device_kind(device: str) -> str:
    return device.partition(":")[0]


def device_index(device: str) -> int:
    """The CUDA index ``cuda`` or ``cuda:N`` names (``cuda`` is the current device, 0)."""
    _, _, index = device.partition(":")
    return int(index) if index else 0


def native_bf16(capability: tuple[int, int]) -> bool:
    return capability >= NATIVE_BF16_CAPABILITY


def prepare_device(device: str) -> None:
    """Before a fold trains on ``device``: on CUDA, make it the current device (so no stray
    context lands on GPU 0) and let float32 matmuls use TF32 tensor cores (Ampere and
    later; a 10-bit mantissa, as transformers' ``tf32=True``)."""
    if device_kind(device) != "cuda":
        return
    import torch

    torch.cuda.set_device(device_index(device))
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def optimizer_options(device: str) -> dict[str, Any]:
    """AdamW's implementation: one fused kernel on CUDA (it also lets an fp16 scaler skip a
    step without a host sync); elsewhere ``foreach`` (one op over all tensors instead of a
    per-tensor loop)."""
    return {"fused": True} if device_kind(device) == "cuda" else {"foreach": True}


def _cuda_in_use() -> bool:
    """CUDA was initialised by this process (never initialise it just to ask)."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()


def release_memory() -> None:
    """After a trial: collect what it left, and give the CUDA allocator's cached blocks back
    so the next trial (or another process on the GPU) starts from an empty card."""
    gc.collect()
    if _cuda_in_use():
        sys.modules["torch"].cuda.empty_cache()


def freeze_survivors() -> None:
    """Once, after a process's first trial (collected): what survives it (the libraries it
    loaded, the data) lives as long as the process, so it leaves the collector's view
    (``gc.freeze``). Each later :func:`release_memory` then scans only what later trials
    made: well under a millisecond, instead of every library object (0.1-0.4 s)."""
    if not gc.get_freeze_count():
        gc.freeze()


def reset_peak_memory(device: str) -> None:
    if device_kind(device) == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_metrics(device: str) -> dict[str, float]:
    """``gpu_peak_mb``: the most memory tensors held on ``device`` since the last reset
    (MB = 10^6 bytes); nothing on CPU or MPS."""
    if device_kind(device) != "cuda":
        return {}
    import torch

    return {"gpu_peak_mb": torch.cuda.max_memory_allocated(device) / 1e6}


def describe_device(device: str) -> dict[str, Any]:
    """What a trial records about its device: the name it trained on, and on CUDA the GPU's
    model and its index among the machine's GPUs (``CUDA_VISIBLE_DEVICES`` of a worker maps
    its ``cuda:0`` to one of them)."""
    record: dict[str, Any] = {"device": device}
    if device_kind(device) != "cuda" or not _torch_sees_cuda():
        return record
    import torch

    index = device_index(device)
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    record["device_name"] = torch.cuda.get_device_name(index)
    record["device_index"] = visible[index] if index < len(visible) else str(index)
    return record


def _torch_sees_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def is_out_of_memory(exc: BaseException) -> bool:
    """A CUDA (or MPS) out-of-memory error."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "MPS backend out of memory" in str(exc)


def out_of_memory_reason(batch_size: int | None, device: str) -> str:
    """Why a trial failed out of memory: the per-step batch (when known) and the device."""
    at = f" at batch_size={batch_size}" if batch_size is not None else ""
    name = describe_device(device).get("device_name")
    return f"out of GPU memory{at} on {device}" + (f" ({name})" if name else "")


def is_fatal_device_error(exc: BaseException) -> bool:
    """A CUDA error that leaves this process's CUDA context unusable (a device-side assert,
    an illegal memory access): no later trial of this process can succeed."""
    if not isinstance(exc, RuntimeError) or is_out_of_memory(exc):
        return False
    text = str(exc)
    return "CUDA" in text and any(marker in text for marker in FATAL_CUDA_ERRORS)

