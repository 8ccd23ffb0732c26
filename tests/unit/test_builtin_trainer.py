"""The built-in trainer: hyperparameters reach the model and optimizer, runs are
reproducible, NaN and pruning end a fold with a reason, and both model paths work."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from hposweep.api import Pruned, TrialContext, TrialFailed
from hposweep.config.loading import load
from hposweep.data.readers import build_folds, load_data
from hposweep.training.builtin import prepare, train

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
    return cfg, build_folds(cfg, load_data(cfg))[0]


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
    finally:  # lazily: a library may keep a file open (MLflow's cached SQLite engine)
        os.system(f"umount --lazy {path}")


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
    with pytest.raises(Pruned, match="^pruned: "):
        train({"learning_rate": 5e-3}, fold, context(cfg, prune=True, reports=reports))
    assert len(reports) == 1


def test_from_pretrained_loads_the_saved_weights_and_saves_a_loadable_checkpoint(
        tmp_path: Path) -> None:
    """The real ``from_pretrained(path)`` path on a model dir this test saved. With a
    learning rate of 0 the weights stay as loaded: the evaluation repeats the saved
    model's exactly, and the checkpoint written loads back with the same outputs."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    cfg, fold = setup()
    first = tmp_path / "first"
    trained = train({"learning_rate": 5e-3}, fold, context(cfg, checkpoint_dir=first))
    pretrained_cfg, _ = setup("model.from_config=null", f"backbones=[{first}]")
    second = tmp_path / "second"
    reloaded = train({"learning_rate": 0.0}, fold,
                     context(pretrained_cfg, checkpoint_dir=second, backbone=str(first)))
    del trained["train_loss"], reloaded["train_loss"]  # training differs on purpose
    assert reloaded == trained, "the backbone's saved weights were not what was evaluated"
    inputs = AutoTokenizer.from_pretrained(second)("Anna visited Paris", return_tensors="pt")
    logits = [AutoModelForTokenClassification.from_pretrained(d)(**inputs).logits
              for d in (first, second)]
    assert torch.equal(*logits)


def test_a_checkpoint_write_that_fills_the_disk_leaves_no_partial_dir(tmp_path: Path) -> None:
    """A real tmpfs with room for the model's files only: the weights are written, then
    the tokenizer's files fail with ENOSPC."""
    cfg, fold = setup()
    s = prepare({"learning_rate": 5e-3}, fold, context(cfg))
    s.model.save_pretrained(tmp_path / "model-only")
    room = sum(pages(f.stat().st_size) for f in (tmp_path / "model-only").iterdir())
    warnings: list[str] = []
    with tmpfs(tmp_path / "disk", room) as disk:
        metrics = train({"learning_rate": 5e-3}, fold,
                        context(cfg, checkpoint_dir=disk / "ck", warnings=warnings))
        left = sorted(str(p.relative_to(disk)) for p in disk.rglob("*"))
    assert "macro-f1-span" in metrics, "the fold's result survives a failed save"
    assert left == [], "the partial checkpoint dir is removed"
    assert len(warnings) == 1 and "checkpoint not saved" in warnings[0], warnings
    assert "No space left on device" in warnings[0]


CUES = {"pos": ["great", "superb", "fun"], "neg": ["dull", "awful", "boring"]}


def test_sequence_classification_learns_a_separable_task(tmp_path: Path) -> None:
    """Each text is random filler words plus one cue word of its label: the model must get
    at least 90% of the validation texts right, where a constant answer gets at most 60%."""
    rng = random.Random(0)
    filler = [f"word{i}" for i in range(40)]
    rows = []
    for i in range(80):
        label = ("pos", "neg")[i % 2]
        words = [*rng.sample(filler, 5), rng.choice(CUES[label])]
        rng.shuffle(words)
        rows.append(json.dumps({"text": " ".join(words), "label": label}))
    data = tmp_path / "reviews.jsonl"
    data.write_text("\n".join(rows) + "\n")
    cfg, fold = setup("data.synthetic=null", f"data.train={data}", "data.task=sequence-classification",
                      "study.objective_metric=accuracy", "train.epochs=8")
    assert fold.labels == ["neg", "pos"]
    constant = max(Counter(e.label for e in fold.validation).values()) / len(fold.validation)
    assert constant <= 0.6
    metrics = train({"learning_rate": 1e-2, "batch_size": 8}, fold, context(cfg))
    assert metrics["accuracy"] >= 0.9, metrics
    assert set(metrics) == {"accuracy", "macro-f1", "loss", "train_loss", "best_epoch", "epochs_trained"}


def test_eval_batch_size_defaults_to_twice_the_batch_and_does_not_change_the_metrics() -> None:
    cfg, fold = setup()
    assert prepare({"batch_size": 8}, fold, context(cfg)).eval_batch_size == 16
    one_cfg, _ = setup("train.eval_batch_size=1")
    assert prepare({"batch_size": 8}, fold, context(one_cfg)).eval_batch_size == 1
    default = train({"learning_rate": 5e-3, "batch_size": 8}, fold, context(cfg))
    one = train({"learning_rate": 5e-3, "batch_size": 8}, fold, context(one_cfg))
    assert one.pop("loss") == pytest.approx(default.pop("loss"), rel=1e-5)
    assert one == default, "padding to another width changed a prediction"
