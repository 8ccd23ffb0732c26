"""🤗 ``datasets`` as input (``data.dataset``): a ``save_to_disk`` dir, or json/jsonl/csv/
parquet file(s), read into the examples the file readers give.

The ``datasets`` package is the optional extra ``hposweep[datasets]``, imported only
here and only when a config names a dataset. Columns are named by ``data.columns``;
label names come from a ``ClassLabel`` feature when the column has one, and so does the
label order: the model's ids are the ``ClassLabel``'s. Everything
wrong with the input (a missing package, split or column, ragged rows) is a
:class:`ConfigError` raised while the data is read, before any trial.
"""

from __future__ import annotations

import hashlib
from glob import glob
from pathlib import Path
from typing import Any

from hposweep.api import Example
from hposweep.config.schema import DatasetConfig, SweepConfig
from hposweep.data.readers import SweepData
from hposweep.errors import ConfigError

FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
DEFAULT_VALIDATION = "validation"


def _import_datasets() -> Any:
    try:
        import datasets
    except ModuleNotFoundError:
        raise ConfigError("data.dataset: reading a 🤗 dataset needs the datasets package: "
                          "pip install 'hposweep[datasets]'") from None
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    return datasets


def _files(path: str) -> list[str]:
    return sorted(glob(path)) if not Path(path).exists() else [path]


def _load_splits(spec: DatasetConfig) -> dict[str, Any]:
    """Every split of the dataset, by name (files and a lone saved Dataset: ``train``)."""
    datasets = _import_datasets()
    path = Path(spec.path)
    try:
        if path.is_dir():
            loaded = datasets.load_from_disk(str(path))
        else:
            files = _files(spec.path)
            suffixes = {Path(f).suffix.lower() for f in files}
            if not files:
                raise ConfigError(f"data.dataset.path: not found: {spec.path}")
            if len(suffixes) != 1 or next(iter(suffixes)) not in FILE_BUILDERS:
                raise ConfigError(f"data.dataset.path: {spec.path} must be a save_to_disk dir or "
                                  f"files of one kind: .json, .jsonl, .csv or .parquet "
                                  f"(found {', '.join(sorted(suffixes))})")
            loaded = datasets.load_dataset(FILE_BUILDERS[suffixes.pop()], data_files=files)
    except ConfigError:
        raise
    except Exception as exc:  # whatever datasets or pyarrow raise for an unreadable input
        raise ConfigError(f"data.dataset.path: cannot read {spec.path}: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    if isinstance(loaded, datasets.DatasetDict):
        return dict(loaded)
    return {"train": loaded}


def _split(splits: dict[str, Any], name: str, key: str, spec: DatasetConfig) -> Any:
    if name not in splits:
        raise ConfigError(f"{key}: {spec.path} has no split {name!r}; its splits: "
                          f"{', '.join(sorted(splits))}")
    return splits[name]


def read_dataset(cfg: SweepConfig) -> SweepData:
    """The training examples, the training split's ``ClassLabel`` names and, when k-fold
    is off and the dataset has one, the validation split's examples
    (``data.dataset.validation_split``; null: a split named ``validation`` if there is
    one, else the hold-out fraction ``data.validation_split``)."""
    spec = cfg.data.dataset
    assert spec is not None
    splits = _load_splits(spec)
    where = f"{spec.path} split {spec.split!r}"
    table = _split(splits, spec.split, "data.dataset.split", spec)
    train = examples_from(table, cfg, where)
    declared = _class_names(table.features[_label_column(cfg)])
    name = spec.validation_split
    if name is None and DEFAULT_VALIDATION in splits:
        name = DEFAULT_VALIDATION
    if cfg.k_fold.enabled or name is None:
        return SweepData(train, None, declared)
    table = _split(splits, name, "data.dataset.validation_split", spec)
    return SweepData(train, examples_from(table, cfg, f"{spec.path} split {name!r}"), declared)


def read_split(cfg: SweepConfig, name: str, key: str) -> list[Example]:
    """One named split's examples (the test split: read by the final stage only)."""
    spec = cfg.data.dataset
    assert spec is not None
    return examples_from(_split(_load_splits(spec), name, key, spec), cfg,
                         f"{spec.path} split {name!r}")


def _label_column(cfg: SweepConfig) -> str:
    """The column of the labels: the tags (token classification) or the class."""
    c = cfg.data.columns
    return c.tags if cfg.data.task == "token-classification" else c.label


def _class_names(feature: Any) -> list[str] | None:
    """A ``ClassLabel``'s names, for the feature or the items of a list feature."""
    inner = getattr(feature, "feature", feature)
    names = getattr(inner, "names", None)
    return list(names) if names is not None and type(inner).__name__ == "ClassLabel" else None


def _labeller(table: Any, column: str) -> Any:
    names = _class_names(table.features[column])
    if names is None:
        return str
    return lambda value: names[value] if isinstance(value, int) and value >= 0 else str(value)


def examples_from(table: Any, cfg: SweepConfig, where: str) -> list[Example]:
    """One split's rows as examples, by the columns ``data.columns`` names."""
    c = cfg.data.columns
    token_task = cfg.data.task == "token-classification"
    wanted = {"tokens": c.tokens, "tags": c.tags} if token_task else {
        "text": c.text, "label": c.label, **({"text_pair": c.text_pair} if c.text_pair else {})}
    for key, column in wanted.items():
        if column not in table.column_names:
            raise ConfigError(f"data.columns.{key}: {where} has no column {column!r}; its "
                              f"columns: {', '.join(table.column_names)}")
    if table.num_rows == 0:
        raise ConfigError(f"data.dataset: {where} has no rows")
    rows = table.select_columns(list(wanted.values())).to_dict()
    if token_task:
        tag = _labeller(table, c.tags)
        examples = []
        for i, (tokens, tags) in enumerate(zip(rows[c.tokens], rows[c.tags], strict=True)):
            if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
                raise ConfigError(f"data.dataset: {where} row {i}: columns {c.tokens!r} and "
                                  f"{c.tags!r} must be lists of the same length")
            examples.append(Example(tuple(map(str, tokens)), tuple(map(tag, tags))))
        return examples
    label = _labeller(table, c.label)
    pairs = rows[c.text_pair] if c.text_pair else [None] * table.num_rows
    examples = []
    for i, (text, pair, value) in enumerate(zip(rows[c.text], pairs, rows[c.label], strict=True)):
        if not isinstance(text, str) or (c.text_pair and not isinstance(pair, str)) or value is None:
            raise ConfigError(f"data.dataset: {where} row {i}: expected text"
                              f"{', text_pair' if c.text_pair else ''} strings and a label")
        examples.append(Example(tuple(text.split()), label=label(value),
                                text_pair=tuple(pair.split()) if pair is not None else None))
    return examples


def dataset_identity(spec: DatasetConfig) -> str:
    """The dataset's content (SHA-256 over its files' names and bytes), not its path: a
    study resumed on another copy of the same data is the same study."""
    digest = hashlib.sha256()
    root = Path(spec.path)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [
        Path(f) for f in _files(spec.path)]
    for file in files:
        digest.update(str(file.relative_to(root) if root.is_dir() else file.name).encode())
        with file.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return "sha256:" + digest.hexdigest()
