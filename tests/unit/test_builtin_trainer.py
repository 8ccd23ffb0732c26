"""The built-in trainer: hyperparameters reach the model and optimizer, runs are
reproducible, NaN and pruning end a fold with a reason, and both model paths work."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from hposweep.config import load
from hposweep.data import build_folds, load_training_examples
from hposweep.training.builtin import prepare, train
from hposweep.training.context import Pruned, TrialContext, TrialFailed

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
SMALL = ["data.synthetic.sentences=40", "train.epochs=1"]


def context(cfg: Any, checkpoint_dir: Path | None = None, prune: bool = False,
            backbone: str = "tiny", reports: list | None = None,
            warnings: list | None = None, resume_dir: Path | None = None) -> TrialContext:
    return TrialContext(cfg, backbone, trial_number=0, fold=0, seed=cfg.train.seed,
                        objective_metric=cfg.study.objective_metric, checkpoint_dir=checkpoint_dir,
                        resume_dir=resume_dir,
                        _report=lambda v, s: (reports if reports is not None else []).append((s, v)),
                        _should_prune=lambda: prune, _log_metrics=lambda m, s: None,
                        _warn=(warnings if warnings is not None else []).append)


def setup(*overrides: str) -> tuple[Any, Any]:
    cfg = load(SMOKE, [*SMALL, *overrides]).config
    return cfg, build_folds(cfg, load_training_examples(cfg))[0]


PAGE = 4096  # tmpfs allocates whole pages


def pages(nbytes: int) -> int:
    """The bytes ``nbytes`` of file data take on a tmpfs."""
    return -(-nbytes // PAGE) * PAGE


@contextlib.contextmanager
def tmpfs(path: Path, size: int) -> Iterator[Path]:
    """A real tmpfs of ``size`` bytes at ``path``, so that writes fail with ENOSPC for real
    (the test is skipped where mounting is not allowed: it needs root)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.system(f"mount -t tmpfs -o size={size} tmpfs {path} 2>/dev/null") != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        os.system(f"umount {path}")


def fill(directory: Path) -> None:
    """Take every free byte of ``directory``'s filesystem."""
    (directory / "filler").write_bytes(b"\0" * shutil.disk_usage(directory).free)


def test_every_hyperparameter_reaches_model_optimizer_and_loader() -> None:
    cfg, fold = setup()
    params = {"learning_rate": 3e-3, "batch_size": 8, "dropout": 0.27, "weight_decay": 0.07,
              "warmup_ratio": 0.5, "epochs": 2}
    s = prepare(params, fold, context(cfg))
    groups = s.optimizer.param_groups
    assert all(g["initial_lr"] == 3e-3 for g in groups)
    assert sorted(g["weight_decay"] for g in groups) == [0.0, 0.07]  # biases/norms exempt
    assert s.loader.batch_size == 8
    assert s.model.config.hidden_dropout_prob == 0.27
    dropouts = [m.p for m in s.model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and all(p == 0.27 for p in dropouts)
    total = 2 * len(s.loader)
    assert s.scheduler.lr_lambdas[0](int(0.5 * total) // 2) < 1.0  # still warming up
    assert s.hp["epochs"] == 2


def test_defaults_come_from_train_section_when_not_sampled() -> None:
    cfg, fold = setup("train.learning_rate=0.002", "train.batch_size=4")
    s = prepare({}, fold, context(cfg))
    assert s.optimizer.param_groups[0]["initial_lr"] == 0.002 and s.loader.batch_size == 4


def test_same_seed_same_metrics_on_cpu() -> None:
    cfg, fold = setup()
    params = {"learning_rate": 5e-3, "batch_size": 8}
    assert train(params, fold, context(cfg)) == train(params, fold, context(cfg))


def test_reports_once_per_epoch() -> None:
    cfg, fold = setup("train.epochs=3")
    reports: list = []
    train({"learning_rate": 5e-3}, fold, context(cfg, reports=reports))
    assert [step for step, _ in reports] == [0, 1, 2]


def test_nan_loss_fails_with_a_reason() -> None:
    cfg, fold = setup()
    with pytest.raises(TrialFailed, match="training loss is nan"):
        train({"learning_rate": 1e6, "batch_size": 4}, fold, context(cfg))


def test_should_prune_stops_after_the_epoch() -> None:
    cfg, fold = setup("train.epochs=3")
    reports: list = []
    with pytest.raises(Pruned, match="after epoch 1"):
        train({"learning_rate": 5e-3}, fold, context(cfg, prune=True, reports=reports))
    assert len(reports) == 1


def test_from_pretrained_path_with_a_saved_model(tmp_path: Path) -> None:
    """The real ``from_pretrained(name_or_path)`` path, on a model dir this test saved."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    cfg, fold = setup()
    first = tmp_path / "first"
    train({"learning_rate": 5e-3}, fold, context(cfg, checkpoint_dir=first))
    assert (first / "model.safetensors").is_file() and (first / "tokenizer.json").is_file()

    pretrained_cfg, _ = setup("model.from_config=null", f"backbones=[{first}]")
    second = tmp_path / "second"
    metrics = train({"learning_rate": 5e-3}, fold,
                    context(pretrained_cfg, checkpoint_dir=second, backbone=str(first)))
    assert 0.0 <= metrics["macro-f1-span"] <= 1.0
    model = AutoModelForTokenClassification.from_pretrained(second)
    tokenizer = AutoTokenizer.from_pretrained(second)
    assert model.config.id2label[0] == "O" and tokenizer.is_fast


def test_failed_checkpoint_write_leaves_no_partial_dir(tmp_path: Path) -> None:
    cfg, fold = setup()
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should go")
    warnings: list = []
    metrics = train({"learning_rate": 5e-3}, fold,
                    context(cfg, checkpoint_dir=blocker / "ck", warnings=warnings))
    assert "macro-f1-span" in metrics, "the fold's result survives a failed save"
    assert not (blocker / "ck").exists()
    assert "checkpoint not saved" in warnings[0]


def test_sequence_classification(tmp_path: Path) -> None:
    data = tmp_path / "reviews.jsonl"
    rows = [('{"text": "great fun film", "label": "pos"}'),
            ('{"text": "dull boring film", "label": "neg"}')] * 10
    data.write_text("\n".join(rows) + "\n")
    cfg, fold = setup("data.synthetic=null", f"data.train={data}", "data.task=sequence-classification",
                      "study.objective_metric=accuracy", "train.epochs=3")
    metrics = train({"learning_rate": 1e-2, "batch_size": 4}, fold, context(cfg))
    assert set(metrics) >= {"accuracy", "macro-f1", "loss"}
    assert fold.labels == ["neg", "pos"]
