"""Early stopping and ``select_epoch``: a fold stops after ``patience`` epochs without an
improvement of more than ``min_delta``; with ``best`` its value, metrics and kept
checkpoint are its best epoch's (the checkpoint, evaluated again, gives the reported
value), pruning still sees every epoch, and a SIGKILL loses none of it."""

from __future__ import annotations

import signal
import subprocess
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hposweep.training.builtin import _encode_tokens, evaluate, train
from hposweep.training.epoch_selection import EpochSelector
from tests.unit.test_builtin_trainer import context, setup
from tests.unit.test_training_state import run_script

LEARNING = {"learning_rate": 5e-3, "batch_size": 8}


@pytest.mark.parametrize(("values", "maximize", "min_delta", "stops_after"), [
    ([0.5, 0.6, 0.6, 0.55, 0.7], True, 0.0, 3),     # no gain at epochs 2 and 3
    ([0.5, 0.6, 0.65, 0.64, 0.7], True, 0.06, 3),   # +0.05, +0.04 over the best: not enough
    ([2.0, 1.0, 1.5, 0.9, 1.2, 1.1], False, 0.0, 5),  # minimize: 0.9 at epoch 3 resets
])
def test_the_selector_stops_after_patience_epochs_without_improvement(
        values: list[float], maximize: bool, min_delta: float, stops_after: int) -> None:
    selector = EpochSelector(maximize, min_delta, patience=2)
    for epoch, value in enumerate(values):
        assert not selector.should_stop(), f"stopped before epoch {epoch}"
        selector.observe(epoch, value, {"v": value}, model=None, keep_weights=False)
        if selector.should_stop():
            assert epoch == stops_after
            return
    pytest.fail("never stopped")


def test_early_stopping_stops_a_fold_at_the_right_epoch() -> None:
    """A learning rate of 0: every epoch's value equals the first one, so with patience 2
    the fold trains epochs 0, 1 and 2 of 6 and stops; its best epoch is 0."""
    cfg, fold = setup("train.epochs=6", "train.early_stopping.patience=2")
    reports: list = []
    metrics = train({"learning_rate": 0.0}, fold, context(cfg, reports=reports))
    assert [step for step, _ in reports] == [0, 1, 2]
    assert metrics["epochs_trained"] == 3 and metrics["best_epoch"] == 0


def test_min_delta_counts_small_gains_as_none() -> None:
    """Minimizing the validation loss of a model that learns: each epoch lowers it, but by
    less than min_delta=10, so the fold stops after 1 + patience epochs."""
    cfg, fold = setup("train.epochs=5", "train.early_stopping.patience=1",
                      "train.early_stopping.min_delta=10", "study.objective_metric=loss",
                      "study.objective_goal=minimize")
    reports: list = []
    train(LEARNING, fold, context(cfg, reports=reports))
    assert len(reports) == 2 and reports[1][1] < reports[0][1], reports


def reevaluate(checkpoint: Path, fold) -> dict[str, float]:
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForTokenClassification.from_pretrained(checkpoint)
    ids = {label: i for i, label in enumerate(fold.labels)}
    dataset = _encode_tokens(tokenizer, fold.validation, ids, 32)
    return evaluate(model, dataset, fold.labels, tokenizer.pad_token_id, True, 16, "cpu")


def test_select_best_keeps_the_best_epochs_checkpoint_value_and_metrics(tmp_path: Path) -> None:
    """The objective is the validation loss, maximized: training lowers it, so the best
    epoch is the first of 3. The fold reports all 3 epochs (for pruning) but returns epoch
    0's metrics, and its checkpoint, evaluated again, gives exactly that value."""
    cfg, fold = setup("train.epochs=3", "study.objective_metric=loss")
    reports: list = []
    best = train(LEARNING, fold, context(cfg, checkpoint_dir=tmp_path / "best", reports=reports))
    assert [step for step, _ in reports] == [0, 1, 2]
    assert reports[2][1] < reports[1][1] < reports[0][1], "the loss did not go down"
    assert best["loss"] == reports[0][1] and best["best_epoch"] == 0
    assert best["epochs_trained"] == 3
    again = reevaluate(tmp_path / "best", fold)
    assert again["loss"] == pytest.approx(best["loss"], rel=1e-6)
    assert again["macro-f1-span"] == best["macro-f1-span"]

    last_cfg, _ = setup("train.epochs=3", "study.objective_metric=loss", "train.select_epoch=last")
    last = train(LEARNING, fold, context(last_cfg, checkpoint_dir=tmp_path / "last"))
    assert last["loss"] == reports[2][1] and last["best_epoch"] == 2
    assert reevaluate(tmp_path / "last", fold)["loss"] == pytest.approx(last["loss"], rel=1e-6)


KILLED_TRAINER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from pathlib import Path
    from hposweep.training.builtin import train
    from tests.unit.test_builtin_trainer import context, setup
    cfg, fold = setup("train.epochs=3", "study.objective_metric=loss", "train.resume_every_steps=2")
    out = Path(sys.argv[1])
    metrics = train({{"learning_rate": 5e-3, "batch_size": 8, "dropout": 0.1}}, fold,
                    context(cfg, resume_dir=out / "resume", checkpoint_dir=out / "checkpoint"))
    print(repr(metrics))
""")


def run_trainer(out: Path, kill_at: str | None) -> subprocess.CompletedProcess[str]:
    return run_script(KILLED_TRAINER, out, kill_at)


@pytest.mark.slow  # starts a process
@pytest.mark.parametrize("kill_at", ["state:trial0:epoch2:step0", "state:trial0:epoch2:step2"])
def test_a_sigkill_after_the_best_epoch_keeps_its_weights_and_metrics(tmp_path: Path,
                                                                      kill_at: str) -> None:
    """Killed for real after epoch 2's state was saved, or part-way through epoch 3 (the
    best epoch is the first): the resumed fold returns the same metrics and keeps the
    same weights as a fold never killed."""
    baseline = run_trainer(tmp_path / "baseline", None)
    assert baseline.returncode == 0, baseline.stderr
    killed = run_trainer(tmp_path / "killed", kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "killed" / "checkpoint").exists()
    resumed = run_trainer(tmp_path / "killed", None)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == baseline.stdout and "'best_epoch': 0.0" in baseline.stdout
    weights = [load_file(str(tmp_path / run / "checkpoint" / "model.safetensors"))
               for run in ("baseline", "killed")]
    assert weights[0].keys() == weights[1].keys()
    # Within float32 rounding, not bitwise: MKL's kernels may round differently from one
    # process to the next (seen once in CI). Epochs 1-2 move most tensors by ~1e-2.
    for name in weights[0]:
        torch.testing.assert_close(weights[1][name], weights[0][name], rtol=1e-5, atol=1e-6,
                                   msg=lambda m, name=name: f"{name}: {m}")
