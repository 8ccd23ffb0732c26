"""The sweep config: a typed schema, loading with dotlist overrides, and validation.

Everything a user can get wrong in a config is caught here, before any trial starts,
and reported as one :class:`ConfigError` line naming the file, the key and the problem.
"""

from __future__ import annotations

import difflib
import io
import math
import os
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from types import UnionType
from typing import Any, NamedTuple, NoReturn, Union, get_args, get_origin, get_type_hints

from hposweep.errors import ConfigError, first_line

SAMPLERS = ("tpe", "random", "grid", "cmaes", "gp", "nsga2")
PRUNERS = ("median", "hyperband", "successive_halving", "wilcoxon", "none")
# The pruner that compares trials fold by fold (its steps are fold indices, not epochs).
FOLD_PRUNERS = ("wilcoxon",)
PARAM_TYPES = ("float", "int", "categorical")
TASKS = ("token-classification", "sequence-classification")
GOALS = ("maximize", "minimize")
BUILTIN_TRAINER = "builtin"
# Hyperparameters the built-in trainer understands; a search space may sample any of them.
BUILTIN_HYPERPARAMETERS = (
    "learning_rate",
    "batch_size",
    "weight_decay",
    "warmup_ratio",
    "dropout",
    "epochs",
    "gradient_accumulation_steps",
)
# Measured once, after training (hposweep.training.cost_metrics): never reported per epoch.
BUILTIN_COST_METRICS = ("n_parameters", "latency_ms", "checkpoint_mb")
BUILTIN_METRICS = ("loss", "macro-f1", "macro-f1-span", "accuracy", *BUILTIN_COST_METRICS)
# mlflow.log_best_checkpoint: true, false, or "front" (every kept member of the Pareto front)
LOG_FRONT = "front"


class Bounds(NamedTuple):
    """The values a numeric setting may take."""

    low: float
    high: float = math.inf
    low_open: bool = False  # low itself is excluded
    integer: bool = False
    nullable: bool = False
    meaning: str = ""  # completes "must be ..."

    def allows(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not math.isfinite(value) or (self.integer and value != int(value)):
            return False
        return (value > self.low if self.low_open else value >= self.low) and value <= self.high


POSITIVE = Bounds(0.0, low_open=True, meaning="a positive finite number")
COUNT = Bounds(1, integer=True, meaning="a whole number, at least 1")
FRACTION = Bounds(0.0, 1.0, meaning="a number within [0, 1]")
# What a value of the built-in trainer's hyperparameters may be, as a train.* default and
# as every value its search_space entry can reach.
HYPERPARAMETER_BOUNDS = {
    "learning_rate": POSITIVE,
    "batch_size": COUNT,
    "epochs": COUNT,
    "dropout": FRACTION._replace(nullable=True, meaning="a number within [0, 1] (or null)"),
    "warmup_ratio": FRACTION,
    "weight_decay": Bounds(0.0, meaning="0 or a positive finite number"),
    "max_grad_norm": POSITIVE,
    "gradient_accumulation_steps": COUNT,
}
PRUNER_BOUNDS = {
    "n_startup_trials": Bounds(0, integer=True, meaning="a whole number, 0 or more"),
    "n_warmup_steps": Bounds(0, integer=True, meaning="a whole number, 0 or more"),
    "min_resource": COUNT,
    "reduction_factor": Bounds(2, integer=True, meaning="a whole number, at least 2"),
    "p_threshold": Bounds(0.0, 1.0, low_open=True, meaning="a number within (0, 1]"),
    "n_startup_steps": Bounds(0, integer=True, meaning="a whole number, 0 or more"),
}
HOURS = POSITIVE._replace(nullable=True, meaning="a positive number of hours or null")
STOP_WHEN_BOUNDS = {
    "no_improvement": COUNT._replace(nullable=True, meaning="a whole number, at least 1, or null"),
    "min_delta": Bounds(0.0, nullable=True, meaning="0, a positive number or null"),
}
WARM_START_KEYS = ("from", "top_k")
WARM_START_TOP_K = 5  # parameter sets taken from the other study when top_k is not given
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STORAGE_PREFIXES = ("sqlite:///", "postgresql", "mysql", "journal:", "journal+redis://")
# Storages whose URL names a file, and the form to write it in.
FILE_STORAGES = {"sqlite:///": "sqlite:///path/to/study.db", "journal:": "journal:path/to/study.log"}
NAME_MAX = 255  # bytes in one file or directory name (ext4, xfs, btrfs, APFS)
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
SELECT_EPOCH = ("best", "last")
TORCH_DTYPES = ("float32", "bfloat16")  # float16 weights cannot be trained by AdamW/GradScaler
# Input is refused before YAML parsing beyond these: PyYAML's time grows with a scalar's
# length (10 MB: minutes) and its stack with nesting.
MAX_CONFIG_BYTES = 1 << 20
MAX_OVERRIDE_CHARS = 64 << 10
MAX_FLOW_DEPTH = 64
MAX_MESSAGE_CHARS = 300  # of a library's error message (it may quote a whole value)
# A bracket, or what to skip: a quoted string (unclosed: to the end of its line, so that no
# match ever backtracks and the scan stays linear) or a comment.
FLOW_TOKEN = re.compile(r"""[\[\]{}]|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\n]|'')*'?|(?<!\S)#[^\n]*""")
# Keys whose value may carry a password: an error names their override, never quotes it.
URL_KEYS = ("study.storage", "mlflow.tracking_uri")
# Keys the seed spec used for the study, and where they live now.
RENAMED_KEYS = {
    "checkpoint.study_name": "study.name",
    "checkpoint.storage_path": "study.storage",
}


@dataclass
class SamplerConfig:
    name: str = "tpe"
    seed: int | None = 42


@dataclass
class PrunerConfig:
    name: str = "median"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    min_resource: int = 1
    reduction_factor: int = 3
    # wilcoxon: prune when worse than the best with p below this. Not Optuna's 0.1: with 5
    # folds that prunes only after fold 4, with 3 or 4 never (benchmarks/pruning.py).
    p_threshold: float = 0.3
    n_startup_steps: int = 2  # wilcoxon: folds compared before the first pruning decision


@dataclass
class BudgetConfig:
    trial_hours: float | None = None  # sum of every trial's wall time in the study
    wall_hours: float | None = None  # since the study's first trial started


@dataclass
class StopWhenConfig:
    no_improvement: int | None = None  # finished trials in a row that did not beat the best
    min_delta: float | None = None  # null: the best trial's standard error over folds (k-fold), else 0


@dataclass
class ObjectiveConfig:
    metric: str = ""
    goal: str = "maximize"


@dataclass
class StudyConfig:
    name: str = "hpo_{backbone}"
    objective_metric: str = "macro-f1"
    objective_goal: str = "maximize"
    max_trials: int = 20
    timeout_minutes: float | None = None
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    storage: str | None = None
    max_retry: int = 3  # re-runs of a trial whose process died or was interrupted
    max_failures: int | None = None  # failed trials after which one run stops (null: max_trials)
    n_workers: int = 1  # trials at once on this machine, each in its own process
    heartbeat_interval: int | None = 60  # seconds; RDB storages (SQLite, PostgreSQL, MySQL)
    grace_period: int | None = None  # seconds without a heartbeat before a trial is stale
    objectives: list[ObjectiveConfig] | None = None  # several objectives (else objective_metric)
    constraints: list[str] = field(default_factory=list)  # "metric <= x" / "metric >= x"
    enqueue: list[dict[str, Any]] = field(default_factory=list)  # parameter sets run first, once
    warm_start: dict[str, Any] | None = None  # {from: study name | storage URL[#study], top_k}
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    stop_when: StopWhenConfig = field(default_factory=StopWhenConfig)


@dataclass
class ParamSpec:
    type: str = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None


@dataclass
class ModelConfig:
    from_config: dict[str, Any] | None = None
    trust_remote_code: bool = False
    revision: str | None = None  # from_pretrained: a branch, tag or commit of a hub model
    local_files_only: bool | None = None  # null: true when HF_HUB_OFFLINE=1
    torch_dtype: str | None = None  # null: float32; the dtype the weights are loaded in
    # backbone -> entries of from_config that differ for it (e.g. a bigger tiny model)
    per_backbone: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class SyntheticConfig:
    sentences: int = 600
    seed: int = 0


@dataclass
class DatasetConfig:
    """A 🤗 datasets input: a ``save_to_disk`` dir, or json/jsonl/csv/parquet file(s)."""

    path: str = ""
    split: str = "train"
    validation_split: str | None = None  # null: a split named "validation" when there is one


@dataclass
class ColumnsConfig:
    """Which dataset columns hold what (token- or sequence-classification)."""

    tokens: str = "tokens"
    tags: str = "tags"
    text: str = "text"
    text_pair: str | None = None
    label: str = "label"


@dataclass
class DataConfig:
    task: str = "token-classification"
    train: str | None = None
    validation: str | None = None
    validation_split: float = 0.2
    synthetic: SyntheticConfig | None = None
    max_length: int = 128
    dataset: DatasetConfig | None = None
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    group_by_length: bool = False  # batches of similar length (less padding), seeded


@dataclass
class EarlyStoppingConfig:
    patience: int = 3  # epochs without improvement before a fold stops
    min_delta: float = 0.0  # an improvement must beat the best by more than this


@dataclass
class TrainConfig:
    epochs: int = 3
    seed: int = 42
    device: str = "auto"
    trainer: str = BUILTIN_TRAINER
    learning_rate: float = 5.0e-5
    batch_size: int = 16
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    dropout: float | None = None
    max_grad_norm: float = 1.0
    resume_every_epochs: int = 1  # save full training state every N epochs (0: never)
    resume_every_steps: int = 0  # ... and every N optimizer steps within an epoch (0: never)
    precision: str = "fp32"  # fp32, bf16, fp16, auto (bf16 where supported, else fp16 on CUDA)
    gradient_accumulation_steps: int = 1
    eval_batch_size: int | None = None  # null: 2 x the trial's batch_size
    early_stopping: EarlyStoppingConfig | None = None
    select_epoch: str = "best"  # best | last: the epoch whose value, metrics and model count


@dataclass
class KFoldConfig:
    enabled: bool = True
    n_splits: int = 5


@dataclass
class CheckpointConfig:
    enabled: bool = True
    auto_resume: bool = True
    save_only_best: bool = True  # False: keep every trial's every fold (the seed's behaviour)
    keep_best: int = 1


@dataclass
class MlflowConfig:
    enabled: bool = True
    tracking_uri: str | None = None
    experiment: str = "hposweep"
    log_best_checkpoint: Any = True  # true, false or "front"
    log_plots: bool = False  # the study's plots under plots/ of the parent run, at the end


@dataclass
class SweepConfig:
    study: StudyConfig = field(default_factory=StudyConfig)
    search_space: dict[str, ParamSpec] = field(default_factory=dict)
    backbones: list[str] = field(default_factory=list)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    k_fold: KFoldConfig = field(default_factory=KFoldConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    output_dir: str = "outputs"


class LoadedConfig(NamedTuple):
    """A validated config and the unresolved YAML it came from (safe to log: no secrets)."""

    config: SweepConfig
    unresolved_yaml: str
    path: Path
    overrides: tuple[str, ...] = ()

    def command(self, name: str) -> str:
        """``hposweep NAME CONFIG OVERRIDES``, as a shell would take it."""
        import shlex

        return shlex.join(["hposweep", name, str(self.path), *self.overrides])


def backbone_slug(backbone: str) -> str:
    """A file-name-safe name for a backbone (a hub id or a local path)."""
    last = Path(backbone.rstrip("/\\")).name or backbone
    return re.sub(r"[^A-Za-z0-9._-]", "_", last).lstrip(".") or "backbone"


def model_spec(cfg: SweepConfig, backbone: str) -> dict[str, Any] | None:
    """The ``model.from_config`` that builds ``backbone``: its ``model.per_backbone``
    entries over the shared ones (None: the backbone is loaded with from_pretrained)."""
    if cfg.model.from_config is None:
        return None
    return {**cfg.model.from_config, **cfg.model.per_backbone.get(backbone, {})}


def study_name_for(cfg: SweepConfig, backbone: str) -> str:
    return cfg.study.name.replace("{backbone}", backbone_slug(backbone))


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = (),
         check_files: bool = True) -> LoadedConfig:
    """Read ``path``, apply ``key=value`` overrides, and return a validated config.

    ``check_files=False`` skips checking that the data files exist: the commands that only
    read a study (status, best, compare, export, plot) do not need them.
    Raises :class:`ConfigError` with one line naming the file, the key and the problem.
    """
    from omegaconf import OmegaConf

    path = Path(path)
    raw = _read_yaml(path)
    trees = [_parse_override(override) for override in overrides]
    _reject_renamed_keys(str(path), OmegaConf.to_container(raw, resolve=False))
    for override, tree in zip(overrides, trees, strict=True):
        _reject_renamed_keys(f"override {override!r}", OmegaConf.to_container(tree))
    _settle_objective_spelling(path, raw, list(overrides), trees)

    schema = OmegaConf.structured(SweepConfig)
    try:
        merged = OmegaConf.merge(schema, raw)
    except Exception as exc:
        raise ConfigError(f"{path}: {_describe_omegaconf_error(exc)}") from None
    for override, tree in zip(overrides, trees, strict=True):  # one at a time: an error names its override
        try:
            merged = OmegaConf.merge(merged, tree)
        except Exception as exc:
            raise ConfigError(f"bad override {_quoted(override)}: "
                              f"{_override_problem(override, exc)}") from None
    unresolved_yaml = _as_written(merged)
    try:
        cfg: SweepConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except Exception as exc:
        raise ConfigError(f"{path}: {_describe_omegaconf_error(exc)}") from None
    validate(cfg, source=str(path), check_files=check_files,
             overrides=dict(_override_keys(overrides)))
    if cfg.study.objectives:  # the first objective is the primary one (progress, reports)
        cfg.study.objective_metric = cfg.study.objectives[0].metric
        cfg.study.objective_goal = cfg.study.objectives[0].goal
    return LoadedConfig(cfg, unresolved_yaml, path, tuple(overrides))


class _FlowMapping(dict):  # type: ignore[type-arg]
    """A mapping dumped on one line, as a search-space entry is written."""


def _as_written(merged: Any) -> str:
    """The merged config as YAML, interpolations unresolved, each search-space entry on one
    line with only the keys that apply to it (no ``low: null`` under a categorical)."""
    import yaml
    from omegaconf import OmegaConf

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(_FlowMapping, lambda dumper, data: dumper.represent_mapping(
        "tag:yaml.org,2002:map", data, flow_style=True))
    tree = OmegaConf.to_container(merged, resolve=False)
    unset = {f.name: f.default for f in fields(ParamSpec) if f.name != "type"}
    tree["search_space"] = {
        name: _FlowMapping((key, value) for key, value in spec.items()
                           if key not in unset or value != unset[key])
        for name, spec in tree["search_space"].items()}
    return yaml.dump(tree, Dumper=Dumper, default_flow_style=False, sort_keys=False,
                     allow_unicode=True, width=10_000)


def _read_yaml(path: Path) -> Any:
    from omegaconf import DictConfig, OmegaConf

    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    with path.open("rb") as file:
        data = file.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size:,} bytes; a config file may have at "
                          f"most {MAX_CONFIG_BYTES:,} (1 MiB)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    too_deep = _too_deep_at(text)
    if too_deep is not None:
        raise ConfigError(f"{path}: line {too_deep}: [ and {{ nest deeper than {MAX_FLOW_DEPTH} levels")
    try:
        raw = OmegaConf.load(io.StringIO(text))
    except Exception as exc:  # yaml errors, constructor errors for !!python tags, ...
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(raw, DictConfig):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return raw


def _parse_override(override: str) -> Any:
    """One ``key=value`` override as a config tree; a bad one is named on its own."""
    from omegaconf import OmegaConf

    def fail(problem: str) -> NoReturn:
        raise ConfigError(f"bad override {_quoted(override)}: {problem}")

    if len(override) > MAX_OVERRIDE_CHARS:
        fail(f"an override may have at most {MAX_OVERRIDE_CHARS:,} characters")
    if _too_deep_at(override) is not None:
        fail(f"[ and {{ nest deeper than {MAX_FLOW_DEPTH} levels")
    if "=" not in override:
        fail("expected key=value, e.g. study.max_trials=10")
    try:
        return OmegaConf.from_dotlist([override])
    except Exception as exc:
        value = override.split("=", 1)[1]
        fail(f"its value {_quoted(value)} is not valid YAML ({_library_problem(exc)}); "
             "write a list as key=[a,b], a mapping as key={a: 1}, and quote a string "
             "with brackets: key='\"[a]\"'")


def _override_keys(overrides: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """``(key, override)`` for each ``key=value`` override, in order."""
    return [(override.split("=", 1)[0].strip(), override) for override in overrides]


# What a value of each schema type must look like, and an override that writes one.
EXPECTED_VALUES = {
    list: ("a list:", "{key}=[{value}]"),  # the user's own value, in brackets
    dict: ("a mapping, e.g.", "{key}={{name: value}}"),
    int: ("a whole number, e.g.", "{key}=10"),
    float: ("a number, e.g.", "{key}=0.5"),
    bool: ("true or false, e.g.", "{key}=true"),
    str: ("a single value, e.g.", "{key}=text"),
}


def _override_problem(override: str, exc: Exception) -> str:
    """Why an override does not fit the schema, as what its key expects (OmegaConf's
    messages name its node classes, not what the user should write)."""
    if type(exc).__name__ == "ConfigKeyError":
        return _describe_omegaconf_error(exc)
    key, value = (part.strip() for part in override.split("=", 1))
    key = getattr(exc, "full_key", None) or key
    kind = _schema_type(key)
    if is_dataclass(kind):
        example = f"{key}.{fields(kind)[0].name}=..."
        return f"{key} is a section: set its keys one by one, e.g. {example!r}"
    if kind not in EXPECTED_VALUES:
        return _describe_omegaconf_error(exc)
    what, example = EXPECTED_VALUES[kind]
    inner = value.strip("[]{}") or "value"
    return f"{key} must be {what} {example.format(key=key, value=inner)!r}"


def _schema_type(full_key: str) -> Any:
    """The plain type (list, dict, int, float, bool, str or a dataclass) of a schema key."""
    hint: Any = SweepConfig
    for part in full_key.split("."):
        if get_origin(hint) is dict:  # search_space.<name>: the dict's value type
            hint = get_args(hint)[1]
        elif is_dataclass(hint):
            hint = get_type_hints(hint).get(part)
        else:
            return None
        if get_origin(hint) in (Union, UnionType):  # X | None: X
            hint = next(t for t in get_args(hint) if t is not type(None))
    return get_origin(hint) or hint


def _too_deep_at(text: str) -> int | None:
    """The line where ``[``/``{`` collections nest deeper than MAX_FLOW_DEPTH, else None.

    A cheap scan before parsing: quoted strings and comments are skipped, well enough for
    a limit no real config comes near.
    """
    depth = 0
    for token in FLOW_TOKEN.finditer(text):
        if token.group() in ("[", "{"):
            depth += 1
        elif token.group() in ("]", "}"):
            depth = max(depth - 1, 0)
        if depth > MAX_FLOW_DEPTH:
            return text.count("\n", 0, token.start()) + 1
    return None


def _quoted(text: str, limit: int = 60) -> str:
    """``text`` quoted; a long one cut short, with its length."""
    if len(text) <= limit:
        return repr(text)
    shown = repr(text[:limit])
    return f"{shown[:-1]}…{shown[-1]} ({len(text):,} characters)"


def _library_problem(exc: BaseException) -> str:
    """A library's error message in one line, cut short: it may quote a whole value."""
    message = first_line(exc)
    return message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS] + "…"


def _yaml_problem(exc: Exception) -> str:
    """``line L, column C: problem`` for PyYAML's marked errors; else the first line."""
    if isinstance(exc, RecursionError):
        return "nested too deeply to read"
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or problem is None:
        return _library_problem(exc)
    text = f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        text += f" ({context} started at line {context_mark.line + 1})"
    return text


def _reject_renamed_keys(source: str, tree: Any) -> None:
    for old, new in RENAMED_KEYS.items():
        section, key = old.split(".")
        if isinstance(tree, dict) and isinstance(tree.get(section), dict) and key in tree[section]:
            raise ConfigError(f"{source}: {old}: this key is now {new!r}; move the value there")


SINGLE_OBJECTIVE_KEYS = ("objective_metric", "objective_goal")


def _settle_objective_spelling(path: Path, raw: Any, overrides: list[str], trees: list[Any]) -> None:
    """``study.objectives`` or ``study.objective_metric/objective_goal``: the file may not set
    both, nor may the command line; a spelling set on the command line replaces the file's
    other one (``study.objectives=[...]`` over a file's objective_metric)."""
    def spellings(tree: Any) -> tuple[list[str], bool]:
        study = tree.get("study") if isinstance(tree, DictConfig) else None
        if not isinstance(study, DictConfig):
            return [], False
        return ([k for k in SINGLE_OBJECTIVE_KEYS if k in study],
                study.get("objectives") is not None)

    from omegaconf import DictConfig

    def refuse(source: str, key: str) -> NoReturn:
        raise ConfigError(f"{source}: study.{key}: set either study.objectives or "
                          "study.objective_metric/objective_goal, not both")

    single, several = spellings(raw)
    if single and several:
        refuse(str(path), single[0])
    by_override = [(o, *spellings(t)) for o, t in zip(overrides, trees, strict=True)]
    typed_single = [(o, keys[0]) for o, keys, _ in by_override if keys]
    typed_several = [o for o, _, many in by_override if many]
    if typed_single and typed_several:
        refuse(f"override {typed_single[0][0]!r}", typed_single[0][1])
    study = raw.get("study") if isinstance(raw, DictConfig) else None
    if isinstance(study, DictConfig):
        for key in (SINGLE_OBJECTIVE_KEYS if typed_several else
                    ("objectives",) if typed_single else ()):
            study.pop(key, None)


def _describe_omegaconf_error(exc: Exception) -> str:
    """One line for an OmegaConf merge/conversion error, with a 'did you mean' for typos."""
    key = getattr(exc, "full_key", None) or ""
    message = _library_problem(exc)
    if type(exc).__name__ == "ConfigKeyError" and key:
        known = _schema_keys_near(key)
        leaf = key.rsplit(".", 1)[-1]
        close = difflib.get_close_matches(leaf, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{key}: unknown key{hint}"
    if type(exc).__name__ == "InterpolationResolutionError" or "oc.env" in message:
        return f"{key}: cannot resolve: {message}" if key else message
    return f"{key}: {message}" if key else message


def _schema_keys_near(full_key: str) -> list[str]:
    """The valid key names at the level where ``full_key`` points."""
    parts = full_key.split(".")[:-1]
    if parts[:1] == ["search_space"]:
        return list(ParamSpec.__dataclass_fields__) if len(parts) == 2 else []
    node: Any = SweepConfig
    for part in parts:
        hint = get_type_hints(node).get(part)
        node = next((t for t in (hint, *get_args(hint)) if is_dataclass(t)), None)
        if node is None:
            return []
    return [f.name for f in fields(node)]



# ---------------------------------------------------------------- semantic validation


def validate(cfg: SweepConfig, source: str = "config", check_files: bool = True,
             overrides: dict[str, str] | None = None) -> None:
    """Check values a type system cannot: ranges, names, files, combinations.

    ``overrides`` (key -> the ``key=value`` typed): a problem with a key an override set
    is blamed on that override, not on ``source``.
    """

    def fail(key: str, problem: str) -> None:
        setters = [text for set_key, text in (overrides or {}).items()
                   if set_key == key or key.startswith(f"{set_key}.")
                   or set_key.startswith(f"{key}.")]
        where = source if not setters else (
            f"override {setters[-1]!r}" if key not in URL_KEYS else f"override of {key}")
        raise ConfigError(f"{where}: {key}: {problem}")

    _validate_study(cfg, fail)
    _validate_objectives(cfg, fail)
    _validate_search_space(cfg, fail)
    _validate_data(cfg, fail, check_files)
    t = cfg.train
    for name, bounds in HYPERPARAMETER_BOUNDS.items():
        _check_bounds(fail, f"train.{name}", getattr(t, name), bounds)
    if not DEVICE.match(t.device):
        fail("train.device", f"must be auto, cpu, mps, cuda or cuda:N, got {t.device!r}")
    _validate_fine_tuning(cfg, fail)
    if t.trainer != BUILTIN_TRAINER and not re.match(r"^[\w.]+:[\w]+$", t.trainer):
        fail("train.trainer", f"must be 'builtin' or 'package.module:function', got {t.trainer!r}")
    for name in ("resume_every_epochs", "resume_every_steps"):
        if getattr(t, name) < 0:
            fail(f"train.{name}", f"must be 0 (never) or positive, got {getattr(t, name)}")
    if cfg.k_fold.n_splits < 2:
        fail("k_fold.n_splits", f"must be at least 2, got {cfg.k_fold.n_splits}")
    if cfg.checkpoint.keep_best < 1:
        fail("checkpoint.keep_best", f"must be at least 1, got {cfg.checkpoint.keep_best}")
    if cfg.model.from_config is not None and "model_type" not in cfg.model.from_config:
        fail("model.from_config", "needs a model_type, e.g. {model_type: bert, hidden_size: 64}")
    _validate_pretrained_options(cfg, fail)
    if not cfg.mlflow.experiment.strip():
        fail("mlflow.experiment", "must not be empty: name the MLflow experiment")
    if not cfg.output_dir:
        fail("output_dir", "must not be empty")
    _check_names(fail, "output_dir", Path(cfg.output_dir).parts)
    if os.path.exists(cfg.output_dir) and not os.path.isdir(cfg.output_dir):  # never raise
        fail("output_dir", f"{cfg.output_dir!r} exists and is not a directory")


def _validate_storage_target(url: str, fail: Any) -> None:
    """A file storage's URL names a file that can be created; a redis one names a host."""
    if url.startswith("journal+redis://"):
        host = url.removeprefix("journal+redis://").split("/", 1)[0].rsplit("@", 1)[-1]
        if not host.split(":", 1)[0]:
            fail("study.storage", "names no redis host: use journal+redis://host:port/db")
        return
    for prefix, form in FILE_STORAGES.items():
        if url.startswith(prefix):
            target = url.removeprefix(prefix)
            if not target.strip():
                fail("study.storage", f"names no file: use {form}")
            _check_names(fail, "study.storage", Path(target).parts, "a file or directory name")


def _check_names(fail: Any, key: str, names: Any, what: str = "a directory name") -> None:
    """Each of ``names`` fits in one file or directory name."""
    for name in names:
        if len(os.fsencode(name)) > NAME_MAX:
            fail(key, f"{_quoted(name)} is longer than {NAME_MAX} bytes as {what}")


def _check_bounds(fail: Any, key: str, value: Any, bounds: Bounds) -> None:
    if not bounds.allows(value):
        fail(key, f"must be {bounds.meaning}, got {value!r}")


def _validate_study(cfg: SweepConfig, fail: Any) -> None:
    s = cfg.study
    if not cfg.backbones:
        fail("backbones", "list at least one model name or local path")
    slugs = [backbone_slug(b) for b in cfg.backbones]
    if any(not b.strip() for b in cfg.backbones):
        fail("backbones", "a backbone name is empty")
    _check_names(fail, "backbones", slugs)
    if len(set(slugs)) != len(slugs):
        fail("backbones", f"two backbones share a directory name: {slugs}")
    leftover = re.findall(r"\{([^}]*)\}", s.name.replace("{backbone}", ""))
    if leftover:
        fail("study.name", f"unknown placeholder {{{leftover[0]}}}: only {{backbone}} is filled in")
    names = [study_name_for(cfg, b) for b in cfg.backbones]
    for name in names:
        if not SAFE_NAME.match(name) or ".." in name:
            fail("study.name", f"{name!r} is not a safe file name (letters, digits, . _ - only)")
    if len(set(names)) != len(names):
        fail("study.name", "must contain {backbone} when several backbones are swept")
    if s.objective_goal not in GOALS:
        fail("study.objective_goal", f"must be one of {', '.join(GOALS)}, got {s.objective_goal!r}")
    if s.max_trials < 1:
        fail("study.max_trials", f"must be at least 1, got {s.max_trials}")
    if s.timeout_minutes is not None and s.timeout_minutes <= 0:
        fail("study.timeout_minutes", f"must be positive or null, got {s.timeout_minutes}")
    if s.n_workers < 1:
        fail("study.n_workers", f"must be at least 1, got {s.n_workers}")
    if s.max_retry < 0:
        fail("study.max_retry", f"must be 0 or more, got {s.max_retry}")
    if s.max_failures is not None and s.max_failures < 1:
        fail("study.max_failures", f"must be at least 1 or null (= max_trials), got {s.max_failures}")
    for name, bounds in PRUNER_BOUNDS.items():
        _check_bounds(fail, f"study.pruner.{name}", getattr(s.pruner, name), bounds)
    for name in ("heartbeat_interval", "grace_period"):
        if getattr(s, name) is not None and getattr(s, name) < 1:
            fail(f"study.{name}", f"must be at least 1 second or null, got {getattr(s, name)}")
    if s.sampler.name not in SAMPLERS:
        fail("study.sampler.name", f"unknown sampler {s.sampler.name!r}; one of {', '.join(SAMPLERS)}")
    if s.pruner.name not in PRUNERS:
        fail("study.pruner.name", f"unknown pruner {s.pruner.name!r}; one of {', '.join(PRUNERS)}")
    if s.storage is not None and not s.storage.startswith(STORAGE_PREFIXES):
        fail(
            "study.storage",
            f"{s.storage!r} is not a storage URL: use sqlite:///path, postgresql://..., "
            "mysql://..., journal:path or journal+redis://host:port",
        )
    if s.storage is not None:
        _validate_storage_target(s.storage, fail)
    _validate_compute_savers(cfg, fail)
    if cfg.train.trainer == BUILTIN_TRAINER and not s.objectives:
        _check_builtin_metric(fail, "study.objective_metric", s.objective_metric)


def _check_builtin_metric(fail: Any, key: str, metric: str) -> None:
    if metric not in BUILTIN_METRICS and not metric.startswith("f1-span-"):
        fail(key, f"the built-in trainer does not report {metric!r}; one of "
                  f"{', '.join(BUILTIN_METRICS)} or f1-span-<ENTITY>")


def _validate_objectives(cfg: SweepConfig, fail: Any) -> None:
    """``study.objectives``, ``study.constraints`` and what depends on them."""
    from hposweep.objectives.spec import parse_constraint, uses_front

    s, builtin = cfg.study, cfg.train.trainer == BUILTIN_TRAINER
    if s.objectives is not None:
        if not s.objectives:
            fail("study.objectives", "is empty: list at least one {metric: ..., goal: ...}")
        metrics = [o.metric for o in s.objectives]
        for i, objective in enumerate(s.objectives):
            key = f"study.objectives[{i}]"
            if not objective.metric.strip():
                fail(f"{key}.metric", "names no metric")
            if objective.goal not in GOALS:
                fail(f"{key}.goal", f"must be one of {', '.join(GOALS)}, got {objective.goal!r}")
            if builtin:
                _check_builtin_metric(fail, f"{key}.metric", objective.metric)
        if len(set(metrics)) != len(metrics):
            fail("study.objectives", f"a metric is listed twice: {metrics}")
        if len(metrics) > 1 and s.pruner.name != "none":
            fail("study.pruner.name", f"{s.pruner.name!r} cannot prune a study of several "
                 "objectives (Optuna prunes single-objective trials only): use none")
        if len(metrics) > 1 and s.sampler.name == "cmaes":
            fail("study.sampler.name", "cmaes optimizes one objective; with several use nsga2, "
                 "tpe, gp, random or grid")
    primary = s.objectives[0].metric if s.objectives else s.objective_metric
    if builtin and primary in BUILTIN_COST_METRICS:
        fail("study.objectives[0].metric" if s.objectives else "study.objective_metric",
             f"the built-in trainer reports {primary!r} once, after training, not per epoch: "
             "make it a later objective or a constraint")
    for i, text in enumerate(s.constraints):
        try:
            constraint = parse_constraint(text)
        except ValueError as exc:
            fail(f"study.constraints[{i}]", str(exc))
        if builtin:
            _check_builtin_metric(fail, f"study.constraints[{i}]", constraint.metric)
    log = cfg.mlflow.log_best_checkpoint
    if not (isinstance(log, bool) or log == LOG_FRONT):
        fail("mlflow.log_best_checkpoint", f"must be true, false or {LOG_FRONT!r}, got {log!r}")
    if log == LOG_FRONT and not uses_front(cfg):
        fail("mlflow.log_best_checkpoint", f"{LOG_FRONT!r} needs several study.objectives or "
             "study.constraints (a study with a Pareto front)")


def _validate_compute_savers(cfg: SweepConfig, fail: Any) -> None:
    """Fold-level pruning, enqueued and warm-started trials, budgets, the no-improvement stop."""
    s = cfg.study
    if s.pruner.name in FOLD_PRUNERS:
        if not cfg.k_fold.enabled:
            fail("study.pruner.name", f"{s.pruner.name} prunes between folds: it needs "
                                      "k_fold.enabled=true")
        first = max(2, s.pruner.n_startup_steps)  # folds compared before the first decision
        if first > cfg.k_fold.n_splits - 1:
            fail("study.pruner", f"{s.pruner.name} decides after {first} folds at the earliest "
                 f"(n_startup_steps={s.pruner.n_startup_steps}; never before 2) and never after "
                 f"the last, so with k_fold.n_splits={cfg.k_fold.n_splits} it would never prune: "
                 f"use k_fold.n_splits of at least {first + 1}")
        pairs = cfg.k_fold.n_splits - 1  # folds it can compare before the last
        if s.pruner.p_threshold <= 0.5 ** pairs:
            fail("study.pruner.p_threshold",
                 f"{s.pruner.name} compares at most {pairs} folds before the last, and the smallest "
                 f"p-value {pairs} pairs can give is {0.5 ** pairs:g}: with p_threshold="
                 f"{s.pruner.p_threshold:g} it would never prune; use a p_threshold above "
                 f"{0.5 ** pairs:g} or more folds")
    for index, params in enumerate(s.enqueue):
        for name, value in params.items():
            if value is not None and not isinstance(value, (bool, int, float, str)):
                fail(f"study.enqueue[{index}].{name}", f"must be a number, string or boolean, "
                                                       f"got {value!r}")
    if s.warm_start is not None:
        _validate_warm_start(s.warm_start, fail)
    for name in ("trial_hours", "wall_hours"):
        _check_bounds(fail, f"study.budget.{name}", getattr(s.budget, name), HOURS)
    for name, bounds in STOP_WHEN_BOUNDS.items():
        _check_bounds(fail, f"study.stop_when.{name}", getattr(s.stop_when, name), bounds)
    if s.stop_when.no_improvement is not None and s.objectives and len(s.objectives) > 1:
        fail("study.stop_when.no_improvement", "needs one objective: a study of several "
             "objectives has a Pareto front, no single best to improve on")


def _validate_warm_start(warm: dict[str, Any], fail: Any) -> None:
    for key in warm:
        if key not in WARM_START_KEYS:
            close = difflib.get_close_matches(str(key), WARM_START_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            fail(f"study.warm_start.{key}", f"unknown key{hint}; warm_start has from and top_k")
    source = warm.get("from")
    if not isinstance(source, str) or not source.strip():
        fail("study.warm_start.from", "name the study to start from: a study name, or a storage "
                                      "URL with #study_name")
    assert isinstance(source, str)
    url, _, name = source.partition("#") if source.startswith(STORAGE_PREFIXES) else ("", "", source)
    if url:
        _validate_storage_target(url, lambda key, problem: fail("study.warm_start.from", problem))
    if name and (not SAFE_NAME.match(name) or ".." in name):
        fail("study.warm_start.from", f"{name!r} is neither a storage URL nor a study name "
                                      "(letters, digits, . _ - only)")
    _check_bounds(fail, "study.warm_start.top_k", warm.get("top_k", WARM_START_TOP_K), COUNT)


def _validate_search_space(cfg: SweepConfig, fail: Any) -> None:
    if not cfg.search_space:
        fail("search_space", "is empty: name at least one hyperparameter to search")
    for name, spec in cfg.search_space.items():
        key = f"search_space.{name}"
        if name == "trust_remote_code":
            fail(key, "trust_remote_code is a security setting (model.trust_remote_code), "
                      "never a search parameter")
        if cfg.train.trainer == BUILTIN_TRAINER and name not in BUILTIN_HYPERPARAMETERS:
            known = ", ".join(BUILTIN_HYPERPARAMETERS)
            fail(key, f"the built-in trainer has no hyperparameter {name!r}; it knows {known}")
        if spec.type not in PARAM_TYPES:
            fail(f"{key}.type", f"unknown distribution {spec.type!r}; one of {', '.join(PARAM_TYPES)}")
        if spec.type == "categorical":
            _validate_categorical(key, spec, fail)
        else:
            _validate_numeric(key, spec, fail)
        if cfg.train.trainer == BUILTIN_TRAINER and name in HYPERPARAMETER_BOUNDS:
            for attr, value in _reachable_ends(spec):
                _check_bounds(fail, f"{key}.{attr}", value, HYPERPARAMETER_BOUNDS[name])
        if cfg.study.sampler.name == "grid" and spec.type == "float" and spec.step is None:
            fail(key, "the grid sampler needs a step (or categorical choices) for every float")


def _reachable_ends(spec: ParamSpec) -> list[tuple[str, Any]]:
    """The values that bound what a search space entry can sample, by the key holding them."""
    if spec.type == "categorical":
        return [("choices", choice) for choice in spec.choices or []]
    return [("low", spec.low), ("high", spec.high)]


def _validate_categorical(key: str, spec: ParamSpec, fail: Any) -> None:
    if not spec.choices:
        fail(f"{key}.choices", "a categorical parameter needs a non-empty list of choices")
    for extra in ("low", "high", "step"):
        if getattr(spec, extra) is not None:
            fail(f"{key}.{extra}", "does not apply to a categorical parameter (use choices)")
    for choice in spec.choices or []:
        if choice is not None and not isinstance(choice, (bool, int, float, str)):
            fail(f"{key}.choices", f"choices must be numbers, strings, booleans or null: {choice!r}")


def _validate_numeric(key: str, spec: ParamSpec, fail: Any) -> None:
    if spec.low is None or spec.high is None:
        fail(key, f"a {spec.type} parameter needs low and high")
    assert spec.low is not None and spec.high is not None
    if not (math.isfinite(spec.low) and math.isfinite(spec.high)):
        fail(key, "low and high must be finite numbers")
    if spec.low > spec.high:
        fail(key, f"low ({spec.low}) is greater than high ({spec.high})")
    if spec.choices is not None:
        fail(f"{key}.choices", f"does not apply to a {spec.type} parameter")
    if spec.log and spec.low <= 0:
        fail(f"{key}.low", f"must be positive with log: true, got {spec.low}")
    if spec.log and spec.step is not None:
        fail(f"{key}.step", "cannot be combined with log: true")
    if spec.step is not None and spec.step <= 0:
        fail(f"{key}.step", f"must be positive, got {spec.step}")
    if spec.type == "int":
        for attr in ("low", "high", "step"):
            value = getattr(spec, attr)
            if value is not None and float(value) != int(value):
                fail(f"{key}.{attr}", f"must be a whole number for an int parameter, got {value}")


def _validate_data(cfg: SweepConfig, fail: Any, check_files: bool) -> None:
    d = cfg.data
    if d.task not in TASKS:
        fail("data.task", f"unknown task {d.task!r}; one of {', '.join(TASKS)}")
    if sum(x is not None for x in (d.train, d.synthetic, d.dataset)) != 1:
        fail("data", "set exactly one of data.train (a file), data.synthetic (generated data) "
                     "or data.dataset (a 🤗 datasets dir or file)")
    _validate_dataset(cfg, fail, check_files)
    if d.synthetic is not None:
        if d.task != "token-classification":
            fail("data.synthetic", "generated data exists for token-classification only")
        if d.synthetic.sentences < 4:
            fail("data.synthetic.sentences", f"must be at least 4, got {d.synthetic.sentences}")
    for key in ("train", "validation") if check_files else ():
        value = getattr(d, key)
        if value is not None and not Path(value).is_file():
            fail(f"data.{key}", f"file not found: {value}{_relative_to(value)}")
    if not 0.0 < d.validation_split < 1.0:
        fail("data.validation_split", f"must be between 0 and 1, got {d.validation_split}")
    if d.max_length < 8:
        fail("data.max_length", f"must be at least 8, got {d.max_length}")


def _relative_to(path: str) -> str:
    """How a relative path that was not found was read: from the working directory."""
    return "" if Path(path).is_absolute() else f" (relative to the working directory, {os.getcwd()})"


def _validate_fine_tuning(cfg: SweepConfig, fail: Any) -> None:
    """Precision, early stopping and epoch selection (the device itself is checked before
    the first trial: ``training.model.check_backbone``)."""
    t = cfg.train
    if t.precision not in PRECISIONS:
        fail("train.precision", f"must be one of {', '.join(PRECISIONS)}, got {t.precision!r}")
    if t.precision == "fp16" and t.device in ("cpu", "mps"):
        fail("train.precision", f"fp16 needs a CUDA device (train.device is {t.device}); "
                                "use bf16 or fp32 there")
    if t.eval_batch_size is not None and t.eval_batch_size < 1:
        fail("train.eval_batch_size", f"must be at least 1 or null (= 2 x batch_size), "
                                      f"got {t.eval_batch_size}")
    if t.select_epoch not in SELECT_EPOCH:
        fail("train.select_epoch", f"must be best or last, got {t.select_epoch!r}")
    if t.early_stopping is not None:
        if t.early_stopping.patience < 1:
            fail("train.early_stopping.patience",
                 f"must be at least 1 epoch, got {t.early_stopping.patience}")
        if not (math.isfinite(t.early_stopping.min_delta) and t.early_stopping.min_delta >= 0):
            fail("train.early_stopping.min_delta",
                 f"must be 0 or a positive number, got {t.early_stopping.min_delta}")


def _validate_pretrained_options(cfg: SweepConfig, fail: Any) -> None:
    m = cfg.model
    if m.torch_dtype is not None and m.torch_dtype not in TORCH_DTYPES:
        fail("model.torch_dtype", f"must be {' or '.join(TORCH_DTYPES)} or null, got "
                                  f"{m.torch_dtype!r} (float16 weights cannot be fine-tuned: "
                                  "use train.precision: fp16 for mixed precision)")
    if m.revision is not None and not m.revision.strip():
        fail("model.revision", "must not be empty: a branch, tag or commit, or null")


def _validate_dataset(cfg: SweepConfig, fail: Any, check_files: bool) -> None:
    d = cfg.data
    if d.dataset is None:
        return
    if not d.dataset.path:
        fail("data.dataset.path", "names no dataset: a save_to_disk dir or json/jsonl/csv/parquet "
                                  "file(s) (a glob pattern is allowed)")
    if check_files:
        from glob import glob

        if not Path(d.dataset.path).exists() and not glob(d.dataset.path):
            fail("data.dataset.path", f"not found: {d.dataset.path}{_relative_to(d.dataset.path)}")
    if d.validation is not None:
        fail("data.validation", "does not apply to data.dataset: name a split of the dataset in "
                                "data.dataset.validation_split")
    if d.dataset.validation_split is not None and cfg.k_fold.enabled:
        fail("data.dataset.validation_split",
             "applies with k_fold.enabled=false only (each fold validates on part of the "
             f"training split): set k_fold.enabled=false to validate on "
             f"{d.dataset.validation_split!r}")
    if d.columns.text_pair is not None and d.task != "sequence-classification":
        fail("data.columns.text_pair", "sentence pairs exist for sequence-classification only")
