"""Mixed precision of the built-in trainer: bf16 autocast on CPU trains like fp32, fp16
where there is no CUDA is bad input before any trial, and an overflowing fp16 step is
skipped by the scaler instead of failing the trial."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hposweep.api import TrialFailed
from hposweep.errors import ConfigError
from hposweep.training.builtin import train
from hposweep.training.model import check_backbone
from hposweep.training.precision import Precision, make_precision, resolve_precision
from tests.conftest import SMOKE
from tests.helpers import hposweep
from tests.unit.test_builtin_trainer import context, setup

PARAMS = {"learning_rate": 1e-2, "batch_size": 8, "dropout": 0.0}
LEARNS = ["train.epochs=3", "data.synthetic.sentences=120"]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_bf16_autocast_on_cpu_trains_and_matches_fp32_within_tolerance() -> None:
    cfg32, fold = setup(*LEARNS)
    cfg16, _ = setup(*LEARNS, "train.precision=bf16")
    fp32 = train(PARAMS, fold, context(cfg32))
    bf16 = train(PARAMS, fold, context(cfg16))
    assert bf16["loss"] < 0.5, "bf16 training did not learn"  # ln(7 tags) = 1.95 untrained
    assert bf16["loss"] == pytest.approx(fp32["loss"], rel=0.05)
    assert bf16["macro-f1-span"] == pytest.approx(fp32["macro-f1-span"], abs=0.05)
    assert bf16["train_loss"] == pytest.approx(fp32["train_loss"], rel=0.05)
    assert bf16 != fp32, "the same numbers: autocast did not run in bfloat16"


def test_bf16_autocast_computes_the_forward_pass_in_bfloat16() -> None:
    precision = make_precision("bf16", "cpu")
    layer = torch.nn.Linear(4, 4)
    with precision.autocast():
        out = layer(torch.ones(2, 4))
    assert out.dtype == torch.bfloat16 and layer.weight.dtype == torch.float32


def test_fp16_on_cpu_is_refused_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = hposweep("run", SMOKE, "train.precision=fp16", "train.device=cpu")
    assert result.exit_code == 2
    assert "train.precision: fp16 needs a CUDA device" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists(), "nothing is written before the refusal"


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto is cuda here")
def test_fp16_with_device_auto_and_no_gpu_is_exit_2_before_any_trial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = hposweep("run", SMOKE, "train.precision=fp16", "train.device=auto",
                      "mlflow.enabled=false")
    assert result.exit_code == 2, result.stderr
    assert "fp16 needs a CUDA device, this run trains on cpu" in result.stderr
    assert "trial 0" not in result.stdout + result.stderr


def test_auto_is_bf16_on_cpu_and_check_backbone_accepts_it() -> None:
    assert resolve_precision("auto", "cpu") == "bf16"
    cfg, _ = setup("train.precision=auto", "train.device=cpu")
    check_backbone(cfg, "tiny")  # raises nothing


def test_fp16_is_refused_on_cpu_by_the_trainer_too() -> None:
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", "cpu")


def test_an_overflowing_fp16_step_is_skipped_by_the_scaler_not_a_failure() -> None:
    """The scaler's skip, for real: torch's GradScaler also runs on CPU tensors, so the
    trainer's step code meets a real inf gradient here."""
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    precision = Precision("fp16", "cpu", torch.amp.GradScaler("cpu", init_scale=2.0 ** 8))
    before = [p.detach().clone() for p in model.parameters()]
    precision.backward(model(torch.ones(1, 3)).sum() * float("inf"))
    precision.step(optimizer, model.parameters(), 1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert precision.scaler.get_scale() == 2.0 ** 7, "the scale is lowered after an overflow"
    optimizer.zero_grad()
    precision.backward(model(torch.ones(1, 3)).sum())  # a finite step then trains
    precision.step(optimizer, model.parameters(), 1.0)
    assert not torch.equal(before[0], model.weight)


@CUDA
@pytest.mark.parametrize("name", ["fp16", "bf16"])
def test_mixed_precision_on_cuda_trains_like_fp32(name: str) -> None:
    if name == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    cfg32, fold = setup(*LEARNS, "train.device=cuda")
    cfg16, _ = setup(*LEARNS, "train.device=cuda", f"train.precision={name}")
    fp32 = train(PARAMS, fold, context(cfg32))
    mixed = train(PARAMS, fold, context(cfg16))
    assert mixed["loss"] == pytest.approx(fp32["loss"], rel=0.05)


def fp16_on_cpu_with_nan_weights():
    """A fold set up in fp32, then given torch's real fp16 scaler (it runs on CPU tensors)
    and a classifier whose weights are NaN: every step's gradients are non-finite."""
    from hposweep.training.builtin import prepare

    cfg, fold = setup()
    s = prepare(PARAMS, fold, context(cfg))
    s.precision = Precision("fp16", "cpu", torch.amp.GradScaler("cpu"))
    with torch.no_grad():
        s.model.classifier.weight.fill_(float("nan"))
    return s, cfg


def test_a_step_the_scaler_skips_does_not_advance_the_schedule() -> None:
    from hposweep.training.builtin import _optimizer_step

    s, cfg = fp16_on_cpu_with_nan_weights()
    window = [next(iter(s.loader))]
    loss = _optimizer_step(s, context(cfg), window, "test")
    assert s.scheduler.last_epoch == 0, "the warm-up would be shortened by a skipped step"
    assert loss is None, "a skipped step's loss does not count in train_loss"


def test_an_fp16_epoch_whose_every_step_is_skipped_fails_the_trial() -> None:
    from hposweep.training.builtin import _train_epoch
    from hposweep.training.epoch_selection import selector_for
    from hposweep.training.state import Progress

    s, cfg = fp16_on_cpu_with_nan_weights()
    with pytest.raises(TrialFailed, match="every optimizer step of epoch 1 was skipped"):
        _train_epoch(s, context(cfg), 0, Progress(), s.generator.get_state(), selector_for(cfg))
