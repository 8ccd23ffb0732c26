"""Evaluation metrics: token-level and span-level (seqeval) F1, and classification F1."""

from __future__ import annotations

from collections import Counter


def per_label_f1(gold: list[str], pred: list[str], labels: list[str]) -> dict[str, float]:
    true_pos: Counter[str] = Counter()
    n_pred: Counter[str] = Counter(pred)
    n_gold: Counter[str] = Counter(gold)
    for g, p in zip(gold, pred, strict=True):
        if g == p:
            true_pos[g] += 1
    scores = {}
    for label in labels:
        denominator = n_pred[label] + n_gold[label]
        scores[label] = 2 * true_pos[label] / denominator if denominator else 0.0
    return scores


def token_classification_metrics(
    gold: list[list[str]], pred: list[list[str]]
) -> dict[str, float]:
    """``macro-f1``: token-level F1 averaged over the gold tags other than 'O';
    ``macro-f1-span``: seqeval's entity-span F1 averaged over entity types;
    ``f1-span-<TYPE>``: span F1 per entity type; ``accuracy``: token accuracy."""
    from seqeval.metrics.sequence_labeling import get_entities, precision_recall_fscore_support

    flat_gold = [tag for sentence in gold for tag in sentence]
    flat_pred = [tag for sentence in pred for tag in sentence]
    tags = sorted({t for t in flat_gold if t != "O"})
    token_f1 = per_label_f1(flat_gold, flat_pred, tags)
    correct = sum(g == p for g, p in zip(flat_gold, flat_pred, strict=True))
    metrics = {
        "macro-f1": sum(token_f1.values()) / len(token_f1) if token_f1 else 0.0,
        "accuracy": correct / len(flat_gold) if flat_gold else 0.0,
    }
    # One pass for every entity type (seqeval's classification_report makes ~10).
    entity_types = sorted({e[0] for e in get_entities(gold)} | {e[0] for e in get_entities(pred)})
    span_f1 = ([float(f) for f in precision_recall_fscore_support(
        gold, pred, average=None, zero_division=0)[2]] if entity_types else [])
    metrics["macro-f1-span"] = sum(span_f1) / len(span_f1) if span_f1 else 0.0
    for entity, f1 in zip(entity_types, span_f1, strict=True):
        metrics[f"f1-span-{entity}"] = f1
    return metrics


def sequence_classification_metrics(gold: list[str], pred: list[str]) -> dict[str, float]:
    labels = sorted(set(gold))
    f1 = per_label_f1(gold, pred, labels)
    correct = sum(g == p for g, p in zip(gold, pred, strict=True))
    return {
        "macro-f1": sum(f1.values()) / len(f1) if f1 else 0.0,
        "accuracy": correct / len(gold) if gold else 0.0,
    }
