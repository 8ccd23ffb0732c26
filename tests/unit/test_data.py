"""Readers, generated data and deterministic splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from hposweep.api import Example
from hposweep.config.loading import load
from hposweep.data.readers import (
    build_folds,
    holdout_indices,
    kfold_indices,
    label_list,
    read_examples,
    synthetic_ner,
)
from hposweep.errors import ConfigError

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"


def test_conll_reader_handles_docstart_blank_lines_and_columns(tmp_path: Path) -> None:
    path = tmp_path / "d.conll"
    path.write_text("-DOCSTART- O\n\nAnna\tB-PER\nlives\tO\n\n\nin NN B-LOC\n")
    examples = read_examples(path, "token-classification")
    assert [e.tokens for e in examples] == [("Anna", "lives"), ("in",)]
    assert [e.tags for e in examples] == [("B-PER", "O"), ("B-LOC",)]


def test_conll_reader_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "d.conll"
    path.write_text("Anna\tB-PER\nbroken\n")
    with pytest.raises(ConfigError, match=r"d\.conll:2"):
        read_examples(path, "token-classification")


def test_jsonl_reader_for_both_tasks(tmp_path: Path) -> None:
    tokens = tmp_path / "t.jsonl"
    tokens.write_text('{"tokens": ["a", "b"], "ner_tags": ["O", "B-X"]}\n\n')
    assert read_examples(tokens, "token-classification")[0].tags == ("O", "B-X")
    texts = tmp_path / "s.jsonl"
    texts.write_text('{"text": "good film", "label": "pos"}\n')
    example = read_examples(texts, "sequence-classification")[0]
    assert example.tokens == ("good", "film") and example.label == "pos"
    bad = tmp_path / "b.jsonl"
    bad.write_text('{"tokens": ["a"], "tags": []}\n')
    with pytest.raises(ConfigError, match=r"b\.jsonl:1"):
        read_examples(bad, "token-classification")


def test_synthetic_data_is_deterministic_valid_bio() -> None:
    first, again = synthetic_ner(50, seed=3), synthetic_ner(50, seed=3)
    assert first == again and first != synthetic_ner(50, seed=4)
    for example in first:
        assert len(example.tokens) == len(example.tags)
        for prev, tag in zip(("O",) + example.tags, example.tags, strict=False):
            if tag.startswith("I-"):
                assert prev[2:] == tag[2:], "an I- tag continues an entity of its type"
    assert label_list(first)[0] == "O"
    assert {"B-PER", "I-PER", "B-LOC", "B-ORG"} <= set(label_list(first))


def test_kfold_is_a_deterministic_partition() -> None:
    splits = kfold_indices(23, 5, seed=1)
    assert splits == kfold_indices(23, 5, seed=1)
    validation = [i for _, v in splits for i in v]
    assert sorted(validation) == list(range(23))
    for train, val in splits:
        assert not set(train) & set(val) and len(train) + len(val) == 23


def test_more_folds_than_examples_is_an_error() -> None:
    with pytest.raises(ConfigError, match="k_fold.n_splits"):
        kfold_indices(3, 5, seed=0)


def test_holdout_split() -> None:
    train, validation = holdout_indices(100, 0.2, seed=0)
    assert len(validation) == 20 and not set(train) & set(validation)


def test_build_folds_uses_validation_file_when_kfold_is_off(tmp_path: Path) -> None:
    train, val = tmp_path / "train.conll", tmp_path / "val.conll"
    train.write_text("a\tO\n\nb\tB-X\n\nc\tO\n")
    val.write_text("d\tB-Y\n")
    cfg = load(SMOKE, ["data.synthetic=null", f"data.train={train}", f"data.validation={val}",
                       "k_fold.enabled=false"]).config
    from hposweep.data.readers import load_data

    folds = build_folds(cfg, load_data(cfg))
    assert len(folds) == 1 and folds[0].fold is None
    assert [e.tokens for e in folds[0].validation] == [("d",)]
    assert "B-Y" in folds[0].labels, "labels seen only in validation are known to the model"


def test_declared_labels_keep_their_order_and_unseen_ones_others_follow_sorted() -> None:
    """A ClassLabel's names are the model's ids in their order, those the data never uses
    included; a label the declaration lacks follows, in the sorted order."""
    examples = [Example(("a", "b", "c"), ("O", "B-LOC", "B-ORG")), Example(("d",), ("B-PER",))]
    assert label_list(examples) == ["O", "B-LOC", "B-ORG", "B-PER"]
    assert label_list(examples, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]) == [
        "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG"]
    texts = [Example(("good",), label="pos"), Example(("bad",), label="neg")]
    assert label_list(texts, ["pos", "meh", "neg"]) == ["pos", "meh", "neg"]


def test_whole_number_labels_keep_their_ids(tmp_path: Path) -> None:
    """A JSONL whose labels are the user's class ids 0..11: id 10 is label 10, not the
    third in a text sort ('0', '1', '10', ...)."""
    path = tmp_path / "classes.jsonl"
    path.write_text("".join(f'{{"text": "word{i}", "label": {i % 12}}}\n' for i in range(24)))
    cfg = load(SMOKE, ["data.synthetic=null", f"data.train={path}",
                       "data.task=sequence-classification"]).config
    from hposweep.data.readers import load_data

    assert build_folds(cfg, load_data(cfg))[0].labels == [str(i) for i in range(12)]
