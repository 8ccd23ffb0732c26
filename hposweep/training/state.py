"""Full training state for resuming a fold mid-way: saved atomically, loaded safely.

Layout of a fold's resume dir::

    latest.json            -> {"state": "state-<id>"}   (replaced atomically)
    state-<id>/model.safetensors
    state-<id>/best.safetensors  the best epoch's weights (``select_epoch: best``, when they
                           are not the current ones)
    state-<id>/trainer.pt  optimizer, scheduler, gradient scaler, RNG states, progress
                           with the best epoch's value and metrics (tensors and plain
                           Python values only: read with ``weights_only=True``)

States are saved at optimizer-step boundaries only (with gradient accumulation, never
part-way through a window of micro-batches): a fold killed mid-accumulation resumes
from the last boundary and recomputes that window's micro-batches, with the same data
and RNG states, so the result is the uninterrupted run's.

A new state is written completely under a temporary name, renamed, and only then
does ``latest.json`` point at it; older states are deleted after that. A save that
fails (a full disk) removes what it wrote and leaves the previous state as it was.
Nothing is ever unpickled beyond what ``torch.load(weights_only=True)`` allows, so a
planted pickle is refused, never executed.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from hposweep.checkpoints.files import write_json_atomic
from hposweep.errors import first_line
from hposweep.training.device import device_index, device_kind
from hposweep.training.epoch_selection import BestEpoch

POINTER = "latest.json"
BEST_WEIGHTS = "best.safetensors"


@dataclass
class Progress:
    """Where a fold's training stands; ``step`` > 0 means part-way through ``epoch``."""

    epoch: int = 0
    step: int = 0
    train_loss: float = 0.0
    history: list[tuple[int, float]] = field(default_factory=list)  # (epoch, reported value)
    metrics: dict[str, float] = field(default_factory=dict)
    best: BestEpoch | None = None  # the best epoch so far
    since_best: int = 0  # epochs evaluated since the best one (early stopping)
    skipped: int = 0  # optimizer steps of ``epoch`` the fp16 scaler skipped (not in train_loss)


class Restored(NamedTuple):
    """What :func:`load` restores beyond the model, optimizer, scheduler and RNGs."""

    progress: Progress
    epoch_generator: Any  # the data generator's state at the start of the saved epoch
    scaler: dict[str, Any]  # the fp16 gradient scaler's state ({} without one)
    best_weights: dict[str, Any] | None  # the best epoch's weights, when not the model's own


class StateRefused(Exception):
    """The saved state exists but cannot be trusted (corrupt, or not plain tensors/values)."""


class StateNotSaved(Exception):
    """Writing a new state failed (a full disk, permissions); the previous one stays."""


def save(directory: Path, model: Any, optimizer: Any, scheduler: Any, generator: Any,
         epoch_generator_state: Any, progress: Progress, scaler: dict[str, Any] | None = None,
         best_weights: dict[str, Any] | None = None, device: str = "cpu") -> None:
    """Write a new state beside the current one, then point ``latest.json`` at it.

    Raises :class:`StateNotSaved` when a write fails, after removing what it wrote.
    """
    from safetensors import SafetensorError  # what safetensors raises on ENOSPC
    from safetensors.torch import save_file, save_model

    name = f"state-{uuid.uuid4().hex[:8]}"
    tmp = directory / f".tmp-{name}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        save_model(model, str(tmp / "model.safetensors"))
        if best_weights is not None:
            save_file(best_weights, str(tmp / BEST_WEIGHTS))
        _torch_save(_trainer_state(optimizer, scheduler, generator, epoch_generator_state,
                                   progress, scaler or {}, device), tmp / "trainer.pt")
        tmp.rename(directory / name)
        write_json_atomic(directory / POINTER, {"state": name})
    except (OSError, SafetensorError) as exc:
        for partial in (tmp, directory / name):
            shutil.rmtree(partial, ignore_errors=True)
        raise StateNotSaved(f"{type(exc).__name__}: {first_line(exc)}") from exc
    for old in directory.glob("state-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)


def _trainer_state(optimizer: Any, scheduler: Any, generator: Any, epoch_generator_state: Any,
                   progress: Progress, scaler: dict[str, Any], device: str) -> dict[str, Any]:
    """Everything but the weights, as tensors and plain values (``weights_only`` loads it).
    Of the GPUs' RNGs only the training device's is saved: a resume may see other GPUs."""
    import random

    import torch

    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "device_rng": (torch.cuda.get_rng_state(device_index(device))
                       if device_kind(device) == "cuda" else torch.zeros(0, dtype=torch.uint8)),
        "python_rng": random.getstate(),
        "generator": generator.get_state(),
        "epoch_generator": epoch_generator_state,
        "scaler": scaler,
        "progress": {"epoch": progress.epoch, "step": progress.step,
                     "train_loss": progress.train_loss,
                     "history": [list(h) for h in progress.history],
                     "metrics": dict(progress.metrics),
                     "best": None if progress.best is None else {
                         "epoch": progress.best.epoch, "value": progress.best.value,
                         "metrics": dict(progress.best.metrics)},
                     "since_best": progress.since_best, "skipped": progress.skipped},
    }


def _torch_save(obj: Any, path: Path) -> None:
    """``torch.save``, whose zip writer reports a failed write (a full disk) as a
    RuntimeError ("unexpected pos ...", "iostream error"): as an OSError naming the file."""
    import torch

    try:
        torch.save(obj, path)
    except RuntimeError as exc:
        raise OSError(f"writing {path.name} failed ({first_line(exc)})") from exc


def load(directory: Path, model: Any, optimizer: Any, scheduler: Any, generator: Any,
         device: str = "cpu") -> Restored | None:
    """Restore everything saved in ``directory``; None when there is nothing to resume.

    Returns the progress, the generator state at the start of the saved epoch, the
    scaler's state and the best epoch's weights. Tensors are read onto the CPU (a state
    saved on ``cuda:1`` loads on a one-GPU host); the optimizer's move to the model's
    device as they are loaded.
    Raises :class:`StateRefused` when the state is corrupt, not plain data, or does not
    fit the model, optimizer or RNGs (nothing is half-restored then: the fold starts over).
    """
    import random

    import torch
    from safetensors.torch import load_file, load_model

    pointer = directory / POINTER
    if not pointer.is_file():
        return None
    try:
        state_dir = directory / json.loads(pointer.read_text())["state"]
        saved = torch.load(state_dir / "trainer.pt", weights_only=True, map_location="cpu")
        load_model(model, str(state_dir / "model.safetensors"))
        best_weights = (load_file(str(state_dir / BEST_WEIGHTS))
                        if (state_dir / BEST_WEIGHTS).is_file() else None)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"])
        if device_kind(device) == "cuda" and len(saved["device_rng"]):
            torch.cuda.set_rng_state(saved["device_rng"], device_index(device))
        version, internal, gauss = saved["python_rng"]
        random.setstate((version, tuple(internal), gauss))
        generator.set_state(saved["generator"])
    except Exception as exc:  # UnpicklingError for a planted pickle, OSError, KeyError...
        raise StateRefused(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    p = saved["progress"]
    best = p.get("best")
    progress = Progress(p["epoch"], p["step"], p["train_loss"],
                        [(int(e), float(v)) for e, v in p["history"]], dict(p["metrics"]),
                        None if best is None else BestEpoch(int(best["epoch"]), float(best["value"]),
                                                            dict(best["metrics"])),
                        int(p.get("since_best", 0)), int(p.get("skipped", 0)))
    return Restored(progress, saved["epoch_generator"], saved.get("scaler", {}), best_weights)
