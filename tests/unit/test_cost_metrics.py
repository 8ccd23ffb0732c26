"""The built-in trainer's cost metrics: parameters, the safetensors size, and latency as
the median of the timed passes after warm-up (a scripted clock: no timing assertion)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hposweep.training import cost_metrics as costs


def tiny_model():
    from transformers import BertConfig, BertForTokenClassification

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=16,
                        num_labels=3)
    return BertForTokenClassification(config)


def test_parameters_in_millions_and_the_size_safetensors_writes(tmp_path: Path) -> None:
    model = tiny_model()
    assert costs.n_parameters(model) == sum(p.numel() for p in model.parameters()) / 1e6
    model.save_pretrained(tmp_path)
    written = (tmp_path / "model.safetensors").stat().st_size
    # the file adds a small JSON header to the tensor bytes
    assert 0 < written - costs.checkpoint_mb(model) * 1e6 < 10_000


def test_latency_is_the_median_of_the_timed_passes_after_warm_up() -> None:
    import torch

    ticks = iter([0.0, 9.0,  # warm-up passes: not counted, however slow
                  10.0, 10.004, 20.0, 20.001, 30.0, 30.003, 40.0, 40.002, 50.0, 50.005])
    calls = []
    model = tiny_model()
    model.register_forward_hook(lambda *args: calls.append(1))
    batch = {"input_ids": torch.ones(4, 8, dtype=torch.long),
             "attention_mask": torch.ones(4, 8, dtype=torch.long),
             "labels": torch.zeros(4, 8, dtype=torch.long)}
    value = costs.latency_ms(model, batch, "cpu", clock=lambda: next(ticks))
    assert value == pytest.approx(3.0)
    assert len(calls) == costs.WARMUP + costs.TIMED


def test_only_the_cost_metrics_a_study_names_are_measured() -> None:
    from hposweep.config.loading import load

    smoke = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
    assert costs.requested(load(smoke).config) == []
    cfg = load(smoke, ["study.constraints=[checkpoint_mb <= 5, macro-f1 >= 0.1]"]).config
    assert costs.requested(cfg) == ["checkpoint_mb"]
    metrics = costs.cost_metrics(tiny_model(), {}, "cpu", ["checkpoint_mb"])
    assert list(metrics) == ["checkpoint_mb"]
