"""🤗 datasets as input (``data.dataset``), end to end through the CLI: a ``save_to_disk``
dataset with a validation split and ClassLabel tags, a parquet file, and a CSV of
sentence pairs each run a sweep; bad input (a missing column, split or package) is exit
2 naming it, before any trial."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hposweep.config.loading import load
from hposweep.data.readers import build_folds, load_data, synthetic_ner
from tests.conftest import FAST, SMOKE
from tests.helpers import hposweep, load_study

datasets = pytest.importorskip("datasets")

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def ner_dataset(sentences: int, seed: int, names: list[str] = TAGS):
    """Generated sentences with ``ner_tags`` a ``ClassLabel(names)``; a tag not in ``names``
    becomes ``O``."""
    examples = synthetic_ner(sentences, seed)
    features = datasets.Features({
        "words": datasets.List(datasets.Value("string")),
        "ner_tags": datasets.List(datasets.ClassLabel(names=names))})
    return datasets.Dataset.from_dict(
        {"words": [list(e.tokens) for e in examples],
         "ner_tags": [[names.index(t if t in names else "O") for t in e.tags] for e in examples]},
        features=features)


@pytest.fixture
def saved_ner(tmp_path: Path) -> Path:
    path = tmp_path / "ner_dataset"
    datasets.DatasetDict({"train": ner_dataset(60, 0), "validation": ner_dataset(20, 1)}
                         ).save_to_disk(str(path))
    return path


NER_COLUMNS = ["data.synthetic=null", "data.columns.tokens=words", "data.columns.tags=ner_tags"]


def sweep(*overrides: str) -> None:
    result = hposweep("run", SMOKE, *FAST, "study.max_trials=2", *overrides, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["backbones"][0]["best_trial"] is not None


def test_a_save_to_disk_dataset_runs_a_sweep_with_its_validation_split(workdir: Path,
                                                                        saved_ner: Path) -> None:
    overrides = [*NER_COLUMNS, f"data.dataset.path={saved_ner}", "k_fold.enabled=false"]
    cfg = load(SMOKE, overrides).config
    (fold,) = build_folds(cfg, load_data(cfg))
    assert (len(fold.train), len(fold.validation)) == (60, 20), "the validation split is used"
    assert fold.labels == TAGS, "the ClassLabel's names, in its order"
    assert fold.train[0].tags[0] in TAGS
    sweep(*overrides)
    (checkpoint,) = Path("outputs/hpo/tiny-bert").glob("trial_*/checkpoint")
    assert_ids_are_the_datasets(checkpoint, TAGS)


def assert_ids_are_the_datasets(checkpoint: Path, names: list[str]) -> None:
    """A user's own pipeline maps the model's argmax ids through their ClassLabel: the
    model's ids must be the ClassLabel's, both ways."""
    config = json.loads((checkpoint / "config.json").read_text())
    assert [config["id2label"].get(str(i)) for i in range(len(names))] == names
    assert config["label2id"] == {name: i for i, name in enumerate(names)}


# Not sorted (PER before LOC): a sorted label list would renumber every entity id.
PER_LOC = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_a_class_label_order_is_the_models_in_every_fold_resume_and_export(
        workdir: Path, tmp_path: Path) -> None:
    path = tmp_path / "per_loc"
    ner_dataset(60, 0, PER_LOC).save_to_disk(str(path))
    overrides = [*NER_COLUMNS, f"data.dataset.path={path}", "checkpoint.save_only_best=false"]
    cfg = load(SMOKE, overrides).config
    assert [fold.labels for fold in build_folds(cfg, load_data(cfg))] == [PER_LOC, PER_LOC]
    sweep(*overrides)
    sweep(*overrides, "study.max_trials=3")  # resumed: one more trial
    checkpoints = sorted(Path("outputs/hpo/tiny-bert").glob("trial_*_fold*/checkpoint"))
    assert len(checkpoints) == 6, "every fold of the 3 trials kept its model"
    for checkpoint in checkpoints:
        assert_ids_are_the_datasets(checkpoint, PER_LOC)
    result = hposweep("export", SMOKE, *FAST, *overrides, "study.max_trials=3", "--to", "prod")
    assert result.exit_code == 0, result.stderr
    assert_ids_are_the_datasets(Path("prod"), PER_LOC)
    assert "- labels: O, B-PER, I-PER, B-LOC, I-LOC" in Path("prod/README.md").read_text()


def test_a_class_label_order_is_the_sequence_classifiers_with_an_unseen_class(
        workdir: Path, tmp_path: Path) -> None:
    names = ["positive", "unused", "negative"]  # 'unused' never occurs in the data
    path = tmp_path / "reviews"
    datasets.Dataset.from_dict(
        {"review": [f"filler{i % 7} {'great' if i % 2 else 'awful'} words" for i in range(40)],
         "stars": [0 if i % 2 else 2 for i in range(40)]},
        features=datasets.Features({"review": datasets.Value("string"),
                                    "stars": datasets.ClassLabel(names=names)}),
    ).save_to_disk(str(path))
    overrides = ["data.synthetic=null", f"data.dataset.path={path}",
                 "data.task=sequence-classification", "data.columns.text=review",
                 "data.columns.label=stars", "study.objective_metric=accuracy"]
    cfg = load(SMOKE, overrides).config
    assert [fold.labels for fold in build_folds(cfg, load_data(cfg))] == [names, names]
    sweep(*overrides)
    (checkpoint,) = Path("outputs/hpo/tiny-bert").glob("trial_*/checkpoint")
    assert_ids_are_the_datasets(checkpoint, names)


def test_without_a_validation_split_the_hold_out_fraction_is_used(workdir: Path,
                                                                  tmp_path: Path) -> None:
    path = tmp_path / "train_only"
    ner_dataset(50, 0).save_to_disk(str(path))  # a lone Dataset: the train split
    cfg = load(SMOKE, [*NER_COLUMNS, f"data.dataset.path={path}", "k_fold.enabled=false",
                       "data.validation_split=0.2"]).config
    (fold,) = build_folds(cfg, load_data(cfg))
    assert (len(fold.train), len(fold.validation)) == (40, 10)


def test_a_parquet_file_runs_a_k_fold_sweep(workdir: Path, tmp_path: Path) -> None:
    rows = [{"review": f"filler{i % 7} {'great' if i % 2 else 'awful'} words", "stars": i % 2}
            for i in range(60)]
    table = datasets.Dataset.from_list(rows).cast_column(
        "stars", datasets.ClassLabel(names=["bad", "good"]))
    table.to_parquet(str(tmp_path / "reviews.parquet"))
    overrides = ["data.synthetic=null", f"data.dataset.path={tmp_path / 'reviews.parquet'}",
                 "data.task=sequence-classification", "data.columns.text=review",
                 "data.columns.label=stars", "study.objective_metric=accuracy"]
    cfg = load(SMOKE, overrides).config
    folds = build_folds(cfg, load_data(cfg))
    assert len(folds) == 2 and folds[0].labels == ["bad", "good"]
    sweep(*overrides)
    assert len(load_study("outputs", "smoke_tiny-bert").trials) == 2


def test_a_csv_of_sentence_pairs_runs_a_sweep(workdir: Path, tmp_path: Path) -> None:
    lines = ["premise,hypothesis,label"] + [
        f"the cat sat {i},{'the cat sat' if i % 2 else 'a dog ran'} {i},"
        f"{'entailment' if i % 2 else 'contradiction'}" for i in range(40)]
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    overrides = ["data.synthetic=null", f"data.dataset.path={tmp_path / 'pairs.csv'}",
                 "data.task=sequence-classification", "data.columns.text=premise",
                 "data.columns.text_pair=hypothesis", "study.objective_metric=accuracy",
                 "k_fold.enabled=false"]
    cfg = load(SMOKE, overrides).config
    (fold,) = build_folds(cfg, load_data(cfg))
    assert fold.train[0].text_pair is not None and fold.labels == ["contradiction", "entailment"]
    from hposweep.training.builtin import _encode_sequences
    from hposweep.training.model import load_tokenizer

    tokenizer = load_tokenizer(cfg, "tiny-bert", fold.train)
    row = _encode_sequences(tokenizer, fold.train[:1], {"contradiction": 0, "entailment": 1}, 32)[0]
    assert 1 in row["token_type_ids"], "the second text has token type 1"
    sweep(*overrides)


def test_a_missing_column_is_exit_2_naming_it(workdir: Path, saved_ner: Path) -> None:
    result = hposweep("run", SMOKE, "data.synthetic=null", f"data.dataset.path={saved_ner}",
                      "data.columns.tokens=words")  # tags: the default 'tags' is not there
    assert result.exit_code == 2
    assert "data.columns.tags" in result.stderr and "no column 'tags'" in result.stderr
    assert "ner_tags" in result.stderr, "the columns it has are listed"
    assert "Traceback" not in result.stderr and not Path("outputs/hpo").exists()


def test_a_missing_split_is_exit_2_listing_the_splits(workdir: Path, saved_ner: Path) -> None:
    result = hposweep("run", SMOKE, *NER_COLUMNS, f"data.dataset.path={saved_ner}",
                      "k_fold.enabled=false", "data.dataset.validation_split=dev")
    assert result.exit_code == 2
    assert "no split 'dev'" in result.stderr and "train, validation" in result.stderr


def test_a_validation_split_with_k_fold_on_is_exit_2_not_ignored(workdir: Path,
                                                                 saved_ner: Path) -> None:
    """k-fold validates each fold on part of the training split: a named validation split
    would silently go unused."""
    result = hposweep("run", SMOKE, *NER_COLUMNS, f"data.dataset.path={saved_ner}",
                      "data.dataset.validation_split=validation")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "data.dataset.validation_split" in result.stderr
    assert "k_fold.enabled=false" in result.stderr and not Path("outputs/hpo").exists()


def test_without_the_datasets_package_it_is_exit_2_naming_the_extra(tmp_path: Path,
                                                                     saved_ner: Path) -> None:
    """The package cannot be uninstalled for one test: a stand-in on PYTHONPATH raises
    the ModuleNotFoundError an environment without it raises."""
    fake = tmp_path / "no-datasets" / "datasets"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'datasets'\", name='datasets')\n")
    env = {**os.environ, "PYTHONPATH": str(fake.parent)}
    result = subprocess.run(
        [sys.executable, "-m", "hposweep", "run", str(SMOKE), *NER_COLUMNS,
         f"data.dataset.path={saved_ner}", "mlflow.enabled=false"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "pip install 'hposweep[datasets]'" in result.stderr
    assert "Traceback" not in result.stderr
