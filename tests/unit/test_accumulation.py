"""Gradient accumulation: 4 batches of 4 update the model as one batch of 16 does, the
scheduler counts optimizer steps, and a fold killed part-way through a window of
micro-batches resumes exactly (states are saved at optimizer-step boundaries)."""

from __future__ import annotations

import signal
import subprocess
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hposweep.training import state
from hposweep.training.builtin import prepare, train
from tests.unit.test_builtin_trainer import context, setup
from tests.unit.test_training_state import run_script

NO_DROPOUT = {"learning_rate": 5e-3, "dropout": 0.0, "warmup_ratio": 0.0}
DATA = ["data.synthetic.sentences=100", "train.epochs=1"]  # 50 training sentences: 4 windows


def weights_after_an_epoch(tmp_path: Path, name: str, **params: int) -> dict[str, torch.Tensor]:
    cfg, fold = setup(*DATA)
    train({**NO_DROPOUT, **params}, fold, context(cfg, checkpoint_dir=tmp_path / name))
    return load_file(str(tmp_path / name / "model.safetensors"))


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_accumulating_4_batches_of_4_gives_the_updates_of_one_batch_of_16(tmp_path: Path) -> None:
    """Same data order (one generator draws the epoch's permutation whatever the batch
    size), dropout off: the parameters after 4 optimizer steps agree to float rounding,
    while 4 unaccumulated batches of 4 (16 steps) end far from them."""
    initial = prepare(NO_DROPOUT, setup(*DATA)[1], context(setup(*DATA)[0])).model.state_dict()
    batch16 = weights_after_an_epoch(tmp_path, "b16", batch_size=16)
    accumulated = weights_after_an_epoch(tmp_path, "b4x4", batch_size=4,
                                         gradient_accumulation_steps=4)
    batch4 = weights_after_an_epoch(tmp_path, "b4", batch_size=4)
    moved = max_difference(batch16, {k: v for k, v in initial.items() if k in batch16})
    assert moved > 1e-3, "training did not move the weights"
    assert max_difference(accumulated, batch16) < 1e-5
    assert max_difference(batch4, batch16) > 100 * max_difference(accumulated, batch16)


def test_the_scheduler_counts_optimizer_steps_not_batches() -> None:
    cfg, fold = setup(*DATA)
    s = prepare({"batch_size": 4, "gradient_accumulation_steps": 4, "warmup_ratio": 0.5,
                 "epochs": 2}, fold, context(cfg))
    assert len(s.loader) == 13 and s.optimizer_steps(len(s.loader)) == 4
    total = 2 * 4
    warmup = total // 2
    assert s.scheduler.lr_lambdas[0](warmup - 1) < 1.0 <= s.scheduler.lr_lambdas[0](warmup)
    assert s.scheduler.lr_lambdas[0](total) == 0.0


KILLED_TRAINER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from pathlib import Path
    from hposweep.training.builtin import train
    from tests.unit.test_builtin_trainer import context, setup
    cfg, fold = setup("data.synthetic.sentences=100", "train.epochs=2",
                      "train.gradient_accumulation_steps=4", "train.resume_every_steps=1")
    metrics = train({{"learning_rate": 5e-3, "batch_size": 4, "dropout": 0.1}}, fold,
                    context(cfg, resume_dir=Path(sys.argv[1])))
    print(repr(metrics))
""")


def run_trainer(resume_dir: Path, kill_at: str | None) -> subprocess.CompletedProcess[str]:
    return run_script(KILLED_TRAINER, resume_dir, kill_at)


@pytest.mark.slow  # starts a process
def test_sigkill_mid_accumulation_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """A real SIGKILL after the 3rd of the 4 micro-batches of epoch 2's second window
    (batches 4-7, dropout on): the state on disk is the one saved after the first window,
    and the resumed fold ends exactly as one never killed."""
    baseline = run_trainer(tmp_path / "baseline", None)
    assert baseline.returncode == 0, baseline.stderr
    killed = run_trainer(tmp_path / "resume", "accumulate:trial0:epoch1:batch4+2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    cfg, fold = setup("data.synthetic.sentences=100", "train.epochs=2",
                      "train.gradient_accumulation_steps=4")
    s = prepare({"batch_size": 4}, fold, context(cfg))
    saved = state.load(tmp_path / "resume", s.model, s.optimizer, s.scheduler, s.generator)
    assert saved is not None and (saved.progress.epoch, saved.progress.step) == (1, 4)
    resumed = run_trainer(tmp_path / "resume", None)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == baseline.stdout
