"""The device decisions only a GPU would exercise, as pure functions or with the hardware
answer injected: precision ``auto`` by compute capability, AdamW's implementation, which
errors are out of memory and which poison the process, what a trial records."""

from __future__ import annotations

import pytest
import torch

from hposweep.training import device as dev
from hposweep.training.precision import resolve_precision


@pytest.mark.parametrize(("capability", "expected"), [((7, 0), "fp16"), ((7, 5), "fp16"),
                                                      ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_auto_precision_on_cuda_follows_the_compute_capability(
        monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], expected: str) -> None:
    """A V100 (7.0) or T4 (7.5) only emulates bf16 (``is_bf16_supported`` counts that):
    fp16 there; A100 (8.0) and H100 (9.0) have it in hardware."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    asked: list[int] = []
    monkeypatch.setattr(torch.cuda, "get_device_capability",
                        lambda index: asked.append(index) or capability)
    assert resolve_precision("auto", "cuda:1") == expected
    assert asked == [1], "the capability of the GPU trained on"


def test_adamw_is_fused_on_cuda_and_foreach_elsewhere() -> None:
    assert dev.optimizer_options("cuda:0") == {"fused": True}
    assert dev.optimizer_options("cpu") == dev.optimizer_options("mps") == {"foreach": True}


def test_out_of_memory_errors_of_cuda_and_mps() -> None:
    assert dev.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    assert dev.is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)"))
    assert not dev.is_out_of_memory(RuntimeError("CUDA error: device-side assert triggered"))
    assert not dev.is_out_of_memory(ValueError("out of memory"))


@pytest.mark.parametrize("message", [
    "CUDA error: device-side assert triggered",
    "CUDA error: an illegal memory access was encountered",
    "CUDA error: unspecified launch failure"])
def test_cuda_errors_that_poison_the_process_are_fatal(message: str) -> None:
    assert dev.is_fatal_device_error(RuntimeError(message))


def test_other_errors_are_not_fatal() -> None:
    assert not dev.is_fatal_device_error(torch.OutOfMemoryError("CUDA out of memory"))
    assert not dev.is_fatal_device_error(RuntimeError("shape mismatch"))
    assert not dev.is_fatal_device_error(ValueError("CUDA error: device-side assert triggered"))


def test_the_device_index_a_name_means() -> None:
    assert [dev.device_index(d) for d in ("cuda", "cuda:0", "cuda:3")] == [0, 0, 3]


def test_on_cpu_a_trial_records_the_device_only_and_no_gpu_memory() -> None:
    assert dev.describe_device("cpu") == {"device": "cpu"}
    assert dev.peak_memory_metrics("cpu") == {}
    assert dev.out_of_memory_reason(4, "cpu") == "out of GPU memory at batch_size=4 on cpu"
    assert dev.resolve_device("cuda:2") == "cuda:2"


def test_auto_is_cuda_when_a_gpu_is_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dev.resolve_device("auto") == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert dev.resolve_device("auto") == "cpu"
