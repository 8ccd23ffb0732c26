"""Datasets for a sweep: file readers, generated NER data, and deterministic splits.

Two tasks share one example type: token classification (``tags`` has one tag per
token) and sequence classification (``label`` is the class of the whole sequence).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from hposweep.api import Example, FoldData
from hposweep.config.schema import SweepConfig
from hposweep.errors import ConfigError


def read_examples(path: str | Path, task: str) -> list[Example]:
    """Read CoNLL (``token<TAB>tag``, blank line between sentences) or JSONL."""
    path = Path(path)
    suffix = path.suffix.lower()
    examples = _read_jsonl(path, task) if suffix in (".jsonl", ".json") else _read_conll(path)
    if task == "sequence-classification" and suffix not in (".jsonl", ".json"):
        raise ConfigError(f"{path}: sequence-classification data must be JSONL with text and label")
    if not examples:
        raise ConfigError(f"{path}: no examples found")
    return examples


def _read_conll(path: Path) -> list[Example]:
    examples: list[Example] = []
    tokens: list[str] = []
    tags: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            line = line.strip()
            if line.startswith("-DOCSTART-"):
                continue
            if not line:
                if tokens:
                    examples.append(Example(tuple(tokens), tuple(tags)))
                    tokens, tags = [], []
                continue
            columns = line.split()
            if len(columns) < 2:
                raise ConfigError(f"{path}:{line_number}: expected 'token<TAB>tag', got {line!r}")
            tokens.append(columns[0])
            tags.append(columns[-1])
    if tokens:
        examples.append(Example(tuple(tokens), tuple(tags)))
    return examples


def _read_jsonl(path: Path, task: str) -> list[Example]:
    examples = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not valid JSON: {exc.msg}") from None
            examples.append(_example_from_record(record, task, where))
    return examples


def _example_from_record(record: object, task: str, where: str) -> Example:
    if not isinstance(record, dict):
        raise ConfigError(f"{where}: each line must be a JSON object")
    if task == "sequence-classification":
        if not isinstance(record.get("text"), str) or "label" not in record:
            raise ConfigError(f"{where}: expected {{'text': ..., 'label': ...}}")
        return Example(tuple(record["text"].split()), label=str(record["label"]))
    tokens = record.get("tokens")
    tags = record.get("tags", record.get("ner_tags"))
    if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
        raise ConfigError(f"{where}: expected 'tokens' and 'tags' lists of the same length")
    return Example(tuple(map(str, tokens)), tuple(map(str, tags)))


# ---------------------------------------------------------------- generated NER data

# Bumped whenever synthetic_ner's output for a given (sentences, seed) changes: a study
# records it, so it never mixes trials trained on different generated data.
SYNTHETIC_GENERATOR = 2

_PEOPLE = [("Anna", "Schmidt"), ("John", "Miller"), ("Maria", "Garcia"), ("Wei", "Zhang"),
           ("Olga", "Ivanova"), ("Ahmed", "Hassan"), ("Lucy", "Brown"), ("Kenji", "Sato"),
           ("Jordan",), ("Georgia", "Lee"), ("Paris", "Hilton")]
_PLACES = [("Berlin",), ("New", "York"), ("Paris",), ("Buenos", "Aires"), ("Tokyo",),
           ("Cape", "Town"), ("Oslo",), ("San", "Francisco"), ("Jordan",), ("Georgia",)]
_ORGS = [("Acme", "Corp"), ("Globex",), ("Initech",), ("Umbrella", "Group"), ("Hooli",),
         ("Stark", "Industries"), ("Wayne", "Enterprises"), ("Vandelay",), ("Berlin", "Labs"),
         ("Tokyo", "Motors")]
# Words that are entities in one sentence and not in another.
_DISTRACTORS = ["Monday", "Tuesday", "May", "Apple", "Summit", "Union", "Bank", "Grand"]
_SYLLABLES = ["ka", "lo", "mir", "ten", "sa", "vor", "el", "ni", "da", "ru", "bo", "zen",
              "fa", "qui", "lan", "tor", "bel", "os", "pra", "vi"]
_SUFFIXES = {"ORG": ["Corp", "Group", "Labs", "Systems"], "LOC": ["City", "Bay", "Falls"]}
_TEMPLATES = [
    "{PER} works for {ORG} in {LOC} .",
    "{PER} visited {LOC} last week .",
    "{ORG} opened an office in {LOC} .",
    "Yesterday {PER} met {PER} at {ORG} .",
    "the report from {ORG} was read by {PER} .",
    "{LOC} is where {ORG} was founded .",
    "{PER} flew from {LOC} to {LOC} on {X} .",
    "shares of {ORG} rose after {PER} spoke .",
    "{X} was a quiet day in {LOC} .",
    "{PER} said {ORG} will buy {ORG} .",
    "the {X} meeting of {ORG} moved to {LOC} .",
    "{PER} and {PER} left {ORG} for {ORG} .",
    "in {LOC} , {PER} praised the {X} plan .",
    "{ORG} hired {PER} from {LOC} .",
]


def _invented(entity: str, rng: random.Random) -> tuple[str, ...]:
    """A name seen nowhere else (its word is rare or new): only the context tells its type."""
    def word() -> str:
        return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()

    if entity == "PER":
        return (word(), word()) if rng.random() < 0.6 else (word(),)
    return (word(), rng.choice(_SUFFIXES[entity])) if rng.random() < 0.4 else (word(),)


def synthetic_ner(sentences: int, seed: int) -> list[Example]:
    """Generated BIO-tagged sentences with PER, LOC and ORG entities (offline, deterministic).

    Hard enough that a sweep's trials differ: half the names are invented (rare words, so
    only the context tells their type), some names are a person in one sentence and a
    place or an organisation in another, and capitalised words need not be entities.
    """
    rng = random.Random(seed)
    pools = {"PER": _PEOPLE, "LOC": _PLACES, "ORG": _ORGS}
    examples = []
    for _ in range(sentences):
        tokens: list[str] = []
        tags: list[str] = []
        for word in rng.choice(_TEMPLATES).split():
            entity = word[1:-1] if word.startswith("{") else None
            if entity is None or entity == "X":
                tokens.append(rng.choice(_DISTRACTORS) if entity else word)
                tags.append("O")
                continue
            name = rng.choice(pools[entity]) if rng.random() < 0.5 else _invented(entity, rng)
            tokens.extend(name)
            tags.extend([f"B-{entity}"] + [f"I-{entity}"] * (len(name) - 1))
        examples.append(Example(tuple(tokens), tuple(tags)))
    return examples


# ---------------------------------------------------------------- splits


def label_list(examples: list[Example], declared: list[str] | None = None) -> list[str]:
    """The model's labels, id by id: the ``declared`` ones (a ``ClassLabel``'s names: a
    user's pipeline maps ids through them) in their order, unseen ones included, then any
    other label in the data, sorted, with 'O' first for token classification."""
    found = {e.label for e in examples if e.label is not None}
    found |= {tag for e in examples for tag in e.tags}
    first = list(declared or [])
    return first + sorted(found - set(first), key=_label_order)


def _label_order(label: str) -> tuple[bool, bool, int, str]:
    """'O' first, then whole numbers by value (class ids 0..11 keep their ids), then names."""
    number = re.fullmatch(r"-?[0-9]+", label) is not None
    return label != "O", not number, int(label) if number else 0, label


def kfold_indices(n_examples: int, n_splits: int, seed: int) -> list[tuple[list[int], list[int]]]:
    """Shuffled, contiguous k-fold splits; the same for every trial of a study."""
    if n_splits > n_examples:
        raise ConfigError(
            f"k_fold.n_splits: {n_splits} folds need at least {n_splits} examples, "
            f"the training data has {n_examples}"
        )
    order = list(range(n_examples))
    random.Random(seed).shuffle(order)
    sizes = [n_examples // n_splits + (1 if i < n_examples % n_splits else 0) for i in range(n_splits)]
    splits, start = [], 0
    for size in sizes:
        validation = order[start : start + size]
        train = order[:start] + order[start + size :]
        splits.append((sorted(train), sorted(validation)))
        start += size
    return splits


def holdout_indices(n_examples: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    order = list(range(n_examples))
    random.Random(seed).shuffle(order)
    n_validation = min(n_examples - 1, max(1, round(n_examples * fraction)))
    return sorted(order[n_validation:]), sorted(order[:n_validation])


@dataclass(frozen=True)
class SweepData:
    """The data a sweep reads once: its training examples, the validation examples given
    apart from them (a file or a split; only with k-fold off), and the label order the
    data declares (a ``ClassLabel``'s names), if it declares one."""

    train: list[Example]
    validation: list[Example] | None = None
    declared_labels: list[str] | None = None


def load_data(cfg: SweepConfig) -> SweepData:
    if cfg.data.dataset is not None:
        from hposweep.data.hf_datasets import read_dataset

        return read_dataset(cfg)
    if cfg.data.synthetic is not None:
        train = synthetic_ner(cfg.data.synthetic.sentences, cfg.data.synthetic.seed)
    else:
        assert cfg.data.train is not None
        train = read_examples(cfg.data.train, cfg.data.task)
    validation = None
    if not cfg.k_fold.enabled and cfg.data.validation is not None:
        validation = read_examples(cfg.data.validation, cfg.data.task)
    return SweepData(train, validation)


def load_test(cfg: SweepConfig) -> list[Example] | None:
    """The test set (``data.test`` or ``data.dataset.test_split``), None when there is none.
    Only the final stage calls this: no trial, fold, pruner or best decision reads it."""
    if cfg.data.dataset is not None and cfg.data.dataset.test_split is not None:
        from hposweep.data.hf_datasets import read_split

        return read_split(cfg, cfg.data.dataset.test_split, "data.dataset.test_split")
    if cfg.data.test is not None:
        return read_examples(cfg.data.test, cfg.data.task)
    return None


def final_training_data(cfg: SweepConfig, data: SweepData) -> list[Example]:
    """What the final model trains on: every fold's training and validation part (k-fold),
    else the training part and, unless ``final.include_validation: false``, the
    validation part (the validation file or split, or the hold-out fraction)."""
    if cfg.k_fold.enabled:
        return list(data.train)
    if cfg.final.include_validation:
        return list(data.train) + list(data.validation or [])
    if data.validation is not None:
        return list(data.train)
    train, _ = holdout_indices(len(data.train), cfg.data.validation_split, cfg.train.seed)
    return [data.train[i] for i in train]


def build_folds(cfg: SweepConfig, data: SweepData) -> list[FoldData]:
    """The folds every trial trains on: k-fold splits, or one train/validation split. Every
    fold has the same labels (the whole data's), so every fold's model has the same ids."""
    seed = cfg.train.seed
    examples, validation_file = data.train, data.validation
    labels = label_list(examples + (validation_file or []), data.declared_labels)
    if len(examples) < 2:
        raise ConfigError("data: the training data needs at least 2 examples")

    def pick(indices: list[int]) -> list[Example]:
        return [examples[i] for i in indices]

    if cfg.k_fold.enabled:
        splits = kfold_indices(len(examples), cfg.k_fold.n_splits, seed)
        return [FoldData(pick(t), pick(v), labels, fold) for fold, (t, v) in enumerate(splits)]
    if validation_file is not None:
        return [FoldData(examples, validation_file, labels, None)]
    train, validation = holdout_indices(len(examples), cfg.data.validation_split, seed)
    return [FoldData(pick(train), pick(validation), labels, None)]
