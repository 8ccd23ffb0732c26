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


def scripted_clock(pass_ms: list[float]):
    """A clock whose consecutive passes take ``pass_ms`` (each pass reads it twice)."""
    ticks, now = [], 0.0
    for ms in pass_ms:
        ticks += [now, now + ms / 1000]
        now += 1.0
    return iter(ticks).__next__


def batch_of(rows: int) -> dict:
    import torch

    return {"input_ids": torch.ones(rows, 8, dtype=torch.long),
            "attention_mask": torch.ones(rows, 8, dtype=torch.long),
            "labels": torch.zeros(rows, 8, dtype=torch.long)}


def test_warm_up_runs_until_passes_settle_and_is_never_timed() -> None:
    """A process's first passes pay one-time costs (the first trial measured 31 ms, the
    others about 1): warm-up goes on until a pass is within 10 % of the one before, so
    that spike is never in the median, however many passes it lasts."""
    warm_up = [31.0, 9.0, 3.0, 1.5, 1.0, 1.05]  # settles at the 6th pass
    timed = [1.0 + 0.01 * i for i in range(costs.TIMED)]  # 1.00 .. 1.20 ms
    calls = []
    model = tiny_model()
    model.register_forward_hook(lambda *args: calls.append(1))
    got = costs.latency_ms(model, batch_of(4), "cpu", clock=scripted_clock(warm_up + timed))
    assert len(calls) == len(warm_up) + costs.TIMED
    assert got["latency_ms"] == pytest.approx(1.10)  # the median of the timed passes
    assert got["latency_ms_iqr"] == pytest.approx(0.10)  # 1.15 - 1.05


def test_warm_up_has_a_floor_and_a_ceiling() -> None:
    passes = []
    costs.timed_passes(lambda: None, lambda forward: passes.append(1) or 1.0)
    assert len(passes) == costs.WARMUP_MIN + costs.TIMED, "steady at once: the minimum"
    passes.clear()
    never_settles = iter(2.0 ** -i for i in range(1000))
    costs.timed_passes(lambda: None, lambda forward: passes.append(1) or next(never_settles))
    assert len(passes) == costs.WARMUP_MAX + costs.TIMED


def test_latency_comes_with_its_spread() -> None:
    metrics = costs.cost_metrics(tiny_model(), batch_of(2), "cpu", ["latency_ms"])
    assert set(metrics) == {"latency_ms", "latency_ms_iqr"}
    assert metrics["latency_ms"] > 0 and metrics["latency_ms_iqr"] >= 0


def test_only_the_cost_metrics_a_study_names_are_measured() -> None:
    from hposweep.config.loading import load

    smoke = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
    assert costs.requested(load(smoke).config) == []
    cfg = load(smoke, ["study.constraints=[checkpoint_mb <= 5, macro-f1 >= 0.1]"]).config
    assert costs.requested(cfg) == ["checkpoint_mb"]
    metrics = costs.cost_metrics(tiny_model(), {}, "cpu", ["checkpoint_mb"])
    assert list(metrics) == ["checkpoint_mb"]
