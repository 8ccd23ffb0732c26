"""Mixed precision for the built-in trainer: which dtype a device trains in, autocast,
and the gradient scaler fp16 needs.

``fp32`` trains as before. ``bf16`` autocasts the forward pass to bfloat16 (CPU, and
CUDA GPUs of compute capability 8.0 or later: older ones only emulate it); ``fp16``
autocasts to float16 on CUDA and scales the loss (``torch.amp.GradScaler``): a step whose
gradients overflow to inf/NaN is skipped and the scale lowered, as the scaler does,
instead of failing the trial (the learning-rate schedule does not advance for a skipped
step). ``auto`` is bf16 where the device supports it, else fp16 on CUDA, else fp32. The
weights, the optimizer and the gradients stay float32 in every case.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from hposweep.errors import ConfigError
from hposweep.training.device import device_index, device_kind, native_bf16

AUTOCAST_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def bf16_supported(device: str) -> bool:
    """bf16 in hardware: CPU, MPS, and CUDA GPUs of compute capability 8.0 or later."""
    import torch

    kind = device_kind(device)
    if kind == "cuda":
        return torch.cuda.is_available() and native_bf16(
            torch.cuda.get_device_capability(device_index(device)))
    return kind in ("cpu", "mps")


def resolve_precision(requested: str, device: str) -> str:
    """The precision ``requested`` means on ``device`` (a resolved device, not ``auto``).

    Raises :class:`ConfigError` for a combination the device cannot train in.
    """
    kind = device_kind(device)
    if requested == "auto":
        if bf16_supported(device):
            return "bf16"
        return "fp16" if kind == "cuda" else "fp32"
    if requested == "fp16" and kind != "cuda":
        raise ConfigError(f"train.precision: fp16 needs a CUDA device, this run trains on "
                          f"{device}; use bf16 or fp32 (or auto)")
    if requested == "bf16" and not bf16_supported(device):
        raise ConfigError(f"train.precision: bf16 is not supported by {device}; use fp16 or fp32 "
                          "(or auto)")
    return requested


@dataclass
class Precision:
    """Autocast and loss scaling for one fold's training."""

    name: str  # fp32, bf16 or fp16
    device: str
    scaler: Any  # a GradScaler for fp16, else None
    scale: float | None = None  # the scaler's scale after the last step (read once per step)

    def autocast(self) -> Any:
        if self.name == "fp32":
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_kind(self.device), dtype=getattr(torch, AUTOCAST_DTYPES[self.name]))

    def backward(self, loss: Any) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: Any, parameters: Any, max_grad_norm: float) -> bool:
        """Clip the (unscaled) gradients and step; under fp16 an overflowing step is skipped.
        Returns whether the optimizer stepped (under fp16 this reads the scale back: one
        host sync per optimizer step, not per batch)."""
        import torch

        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        # foreach=None: torch picks the fused path where the device has one (MPS has not).
        torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm, foreach=None)
        if self.scaler is None:
            optimizer.step()
            return True
        before = self.scale if self.scale is not None else self.scaler.get_scale()
        self.scaler.step(optimizer)
        self.scaler.update()
        self.scale = self.scaler.get_scale()
        return self.scale >= before  # the scaler lowers the scale when it skips a step

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
            self.scale = None


def make_precision(requested: str, device: str) -> Precision:
    name = resolve_precision(requested, device)
    scaler = None
    if name == "fp16":
        import torch

        scaler = torch.amp.GradScaler(device_kind(device))
    return Precision(name, device, scaler)
