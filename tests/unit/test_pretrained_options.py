"""``model.from_pretrained`` options on model dirs the tests save themselves: a head of
another size is re-initialised with a warning, ``torch_dtype`` is the dtype the weights
load in, ``revision`` picks a snapshot of a hub model (from a hub cache built here,
offline), and ``local_files_only`` follows ``HF_HUB_OFFLINE`` unless set."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from hposweep.training.builtin import train
from hposweep.training.model import build_model, hub_options, load_tokenizer, local_files_only
from tests.unit.test_builtin_trainer import context, setup

PRETRAINED = ["model.from_config=null"]


def save_model(directory: Path, num_labels: int, seed: int = 0) -> Path:
    """A tiny BERT token classifier with ``num_labels`` labels, and its tokenizer."""
    from transformers import BertConfig, BertForTokenClassification

    from hposweep.data.readers import synthetic_ner
    from hposweep.training.model import word_level_tokenizer

    tokenizer = word_level_tokenizer(synthetic_ner(100, 0), 32)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        num_labels=num_labels)
    BertForTokenClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_a_head_of_another_size_is_reinitialised_with_a_warning(tmp_path: Path) -> None:
    backbone = save_model(tmp_path / "three-labels", num_labels=3)
    cfg, fold = setup(*PRETRAINED, f"backbones=[{backbone}]")
    warnings: list[str] = []
    metrics = train({"learning_rate": 5e-3}, fold,
                    context(cfg, backbone=str(backbone), warnings=warnings))
    assert "macro-f1-span" in metrics
    (warning,) = [w for w in warnings if "re-initialised" in w]
    assert "7 labels" in warning and "classifier.weight (3, 32) -> (7, 32)" in warning
    train({"learning_rate": 5e-3}, fold, context(cfg, backbone=str(backbone), warnings=warnings))
    assert len([w for w in warnings if "re-initialised" in w]) == 1, "once per backbone"


def test_a_head_of_the_right_size_loads_without_a_warning(tmp_path: Path) -> None:
    backbone = save_model(tmp_path / "seven-labels", num_labels=7)
    cfg, fold = setup(*PRETRAINED, f"backbones=[{backbone}]")
    warnings: list[str] = []
    tokenizer = load_tokenizer(cfg, str(backbone), fold.train)
    build_model(cfg, str(backbone), fold.labels, tokenizer, None, warn=warnings.append)
    assert warnings == []


@pytest.mark.parametrize("dtype", [None, "bfloat16"])
def test_torch_dtype_is_the_dtype_the_weights_load_in_and_training_keeps_float32_weights(
        tmp_path: Path, dtype: str | None) -> None:
    """Pure bfloat16 weights and AdamW state lose updates under bf16's precision: whatever
    the weights are read in, the model trains float32 master weights."""
    backbone = save_model(tmp_path / "model", num_labels=7)
    cfg, fold = setup(*PRETRAINED, f"backbones=[{backbone}]",
                      f"model.torch_dtype={dtype if dtype else 'null'}")
    tokenizer = load_tokenizer(cfg, str(backbone), fold.train)
    model = build_model(cfg, str(backbone), fold.labels, tokenizer, None)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    embeddings = model.get_input_embeddings().weight
    read_in_bf16 = torch.equal(embeddings, embeddings.bfloat16().float())
    assert read_in_bf16 == (dtype == "bfloat16")


def test_local_files_only_follows_hf_hub_offline_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, _ = setup()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert local_files_only(cfg) is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert local_files_only(cfg) is True and hub_options(cfg)["local_files_only"] is True
    explicit, _ = setup("model.local_files_only=false")
    assert local_files_only(explicit) is False


FROM_CACHE = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from hposweep.training.model import build_model, load_tokenizer
    from tests.unit.test_builtin_trainer import setup
    cfg, fold = setup("model.from_config=null", "backbones=[hposweep-tests/tiny]", *sys.argv[1:])
    tokenizer = load_tokenizer(cfg, "hposweep-tests/tiny", fold.train)
    model = build_model(cfg, "hposweep-tests/tiny", fold.labels, tokenizer, None)
    print(float(model.bert.embeddings.word_embeddings.weight.sum()))
""")


@pytest.mark.slow  # starts a process
def test_revision_picks_the_snapshot_of_a_hub_model(tmp_path: Path) -> None:
    """A hub cache with two revisions of one model (``main`` and tag ``v2``, different
    weights), read offline: each revision loads its own weights."""
    repo = tmp_path / "hub" / "models--hposweep-tests--tiny"
    sums = {}
    for revision, commit, seed in (("main", "a" * 40, 0), ("v2", "b" * 40, 1)):
        snapshot = save_model(repo / "snapshots" / commit, num_labels=7, seed=seed)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / revision).write_text(commit)
        from safetensors.torch import load_file

        weights = load_file(str(snapshot / "model.safetensors"))
        sums[revision] = float(weights["bert.embeddings.word_embeddings.weight"].sum())
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}

    def loaded(*overrides: str) -> float:
        script = FROM_CACHE.format(repo=str(Path(__file__).resolve().parents[2]))
        result = subprocess.run([sys.executable, "-c", script, *overrides], capture_output=True,
                                text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr
        return float(result.stdout.split()[-1])

    assert sums["main"] != sums["v2"]
    assert loaded() == pytest.approx(sums["main"])
    assert loaded("model.revision=v2") == pytest.approx(sums["v2"])
