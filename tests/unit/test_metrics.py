"""Metrics against hand-computed values."""

from __future__ import annotations

import pytest

from hposweep.training.metrics import sequence_classification_metrics, token_classification_metrics


def test_token_and_span_metrics() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["O", "B-ORG"]]
    m = token_classification_metrics(gold, pred)
    # token level, 'O' excluded: B-PER 1, I-PER 1, B-LOC 0, B-ORG 1 -> 3/4
    assert m["macro-f1"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(5 / 6)
    # spans: PER 1, ORG 1, LOC 0 -> 2/3
    assert m["macro-f1-span"] == pytest.approx(2 / 3)
    assert (m["f1-span-PER"], m["f1-span-LOC"]) == (1.0, 0.0)


def test_span_metric_punishes_a_broken_span_that_token_metric_half_credits() -> None:
    gold = [["B-PER", "I-PER"]]
    pred = [["B-PER", "O"]]
    m = token_classification_metrics(gold, pred)
    assert m["macro-f1-span"] == 0.0 and m["macro-f1"] == pytest.approx(0.5)


def test_sequence_classification_metrics() -> None:
    m = sequence_classification_metrics(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert m["accuracy"] == 0.75
    assert m["macro-f1"] == pytest.approx((2 / 3 + 0.8) / 2)
