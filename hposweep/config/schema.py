"""The sweep config's schema: pydantic models that state each key's type, allowed values
and range, and check the rules between keys of one model beside it.

A field's ``description`` completes "must be ..." in the message of a value out of range;
a rule that fails raises :func:`rule`, naming the key below its model and the other keys
the rule read (so that :mod:`hposweep.config.loading` blames the override that set one).
Rules that need several sections, or the file system, live in :mod:`hposweep.config.rules`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

SamplerName = Literal["tpe", "random", "grid", "cmaes", "gp", "nsga2"]
PrunerName = Literal["median", "hyperband", "successive_halving", "wilcoxon", "none"]
Task = Literal["token-classification", "sequence-classification"]
Goal = Literal["maximize", "minimize"]
Precision = Literal["fp32", "bf16", "fp16", "auto"]
TorchDtype = Literal["float32", "bfloat16"]  # float16 weights cannot be trained by AdamW/GradScaler
# The pruner that compares trials fold by fold (its steps are fold indices, not epochs).
FOLD_PRUNERS = ("wilcoxon",)
# The pruners that decide within a fold, at epoch steps (``study.pruner.folds`` adds a
# fold-level test to one of them).
EPOCH_PRUNERS = ("median", "hyperband", "successive_halving")
PARAM_TYPES = ("float", "int", "categorical")
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
WARM_START_TOP_K = 5  # parameter sets taken from the other study when top_k is not given
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STORAGE_PREFIXES = ("sqlite:///", "postgresql", "mysql", "journal:", "journal+redis://")
# Storages whose URL names a file, and the form to write it in.
FILE_STORAGES = {"sqlite:///": "sqlite:///path/to/study.db", "journal:": "journal:path/to/study.log"}
NAME_MAX = 255  # bytes in one file or directory name (ext4, xfs, btrfs, APFS)
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
# Keys whose value may carry a password: an error names their override, never quotes it.
URL_KEYS = ("study.storage", "mlflow.tracking_uri")


def rule(problem: str, key: str = "", involves: tuple[str, ...] = ()) -> PydanticCustomError:
    """A broken rule: ``key`` below the model that checks it (``""``: the model itself),
    ``involves``: the other keys (full paths) the rule read."""
    return PydanticCustomError("rule", "{problem}",
                               {"problem": problem, "key": key, "involves": involves})


def non_blank(problem: str) -> AfterValidator:
    """A string field that must say something: blank is ``problem``."""
    def check(text: str) -> str:
        if not text.strip():
            raise rule(problem)
        return text

    return AfterValidator(check)


def quoted(text: str, limit: int = 60) -> str:
    """``text`` quoted; a long one cut short, with its length."""
    if len(text) <= limit:
        return repr(text)
    shown = repr(text[:limit])
    return f"{shown[:-1]}…{shown[-1]} ({len(text):,} characters)"


def long_name(names: Any, what: str = "a directory name") -> str | None:
    """The problem with the first of ``names`` that does not fit in one file name."""
    for name in names:
        if len(os.fsencode(name)) > NAME_MAX:
            return f"{quoted(name)} is longer than {NAME_MAX} bytes as {what}"
    return None


def storage_target_problem(url: str) -> str | None:
    """A file storage's URL names a file that can be created; a redis one names a host."""
    if url.startswith("journal+redis://"):
        host = url.removeprefix("journal+redis://").split("/", 1)[0].rsplit("@", 1)[-1]
        if not host.split(":", 1)[0]:
            return "names no redis host: use journal+redis://host:port/db"
        return None
    for prefix, form in FILE_STORAGES.items():
        if url.startswith(prefix):
            target = url.removeprefix(prefix)
            if not target.strip():
                return f"names no file: use {form}"
            return long_name(Path(target).parts, "a file or directory name")
    return None


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


class Section(BaseModel):
    """A section of the config: unknown keys are refused; numbers are accepted as text."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, populate_by_name=True,
                              defer_build=True)  # built on first use: a bad YAML file never pays


Count = Annotated[int, Field(ge=1, description="a whole number, at least 1")]
AtLeastZero = Annotated[int, Field(ge=0, description="a whole number, 0 or more")]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False, description="a positive finite number")]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False,
                                  description="a number within [0, 1]")]


class SamplerConfig(Section):
    name: SamplerName = "tpe"
    seed: int | None = 42


class PrunerConfig(Section):
    name: PrunerName = "median"
    n_startup_trials: AtLeastZero = 5
    n_warmup_steps: AtLeastZero = 0
    min_resource: Count = 1
    reduction_factor: Annotated[int, Field(ge=2, description="a whole number, at least 2")] = 3
    # wilcoxon: prune when worse than the best with p below this. Not Optuna's 0.1: with 5
    # folds that prunes only after fold 4, with 3 or 4 never (benchmarks/pruning.py).
    p_threshold: Annotated[float, Field(gt=0, le=1, description="a number within (0, 1]")] = 0.3
    n_startup_steps: AtLeastZero = 2  # wilcoxon: folds compared before the first pruning decision
    # A fold-level test between folds on top of the epoch-level pruner ``name``.
    folds: Annotated[Literal["wilcoxon"] | None, Field(description="wilcoxon or null")] = None


Hours = Annotated[float | None, Field(gt=0, allow_inf_nan=False,
                                      description="a positive number of hours or null")]


class BudgetConfig(Section):
    trial_hours: Hours = None  # sum of every trial's wall time in the study
    wall_hours: Hours = None  # since the study's first trial started


class StopWhenConfig(Section):
    # finished trials in a row that did not beat the best
    no_improvement: Annotated[int | None, Field(
        ge=1, description="a whole number, at least 1, or null")] = None
    # null: the best trial's standard error over folds (k-fold), else 0
    min_delta: Annotated[float | None, Field(
        ge=0, allow_inf_nan=False, description="0, a positive number or null")] = None


class ObjectiveConfig(Section):
    metric: Annotated[str, non_blank("names no metric")] = ""
    goal: Goal = "maximize"


class WarmStartConfig(Section):
    """``{from: study name | storage URL[#study], top_k}``."""

    source: str = Field("", alias="from")
    top_k: Count = WARM_START_TOP_K

    @model_validator(mode="after")
    def _names_a_study(self) -> WarmStartConfig:
        def fail(problem: str) -> None:
            raise rule(problem, "from")

        if not self.source.strip():
            fail("name the study to start from: a study name, or a storage URL with #study_name")
        url, _, name = (self.source.partition("#") if self.source.startswith(STORAGE_PREFIXES)
                        else ("", "", self.source))
        problem = storage_target_problem(url) if url else None
        if problem:
            fail(problem)
        if name and (not SAFE_NAME.match(name) or ".." in name):
            fail(f"{name!r} is neither a storage URL nor a study name (letters, digits, . _ - only)")
        return self


def _objective_rules(study: StudyConfig) -> None:
    """What several objectives rule out, and the constraints' own syntax."""
    from hposweep.objectives.spec import parse_constraint

    objectives = study.objectives
    if objectives is not None:
        if not objectives:
            raise rule("is empty: list at least one {metric: ..., goal: ...}", "objectives")
        metrics = [o.metric for o in objectives]
        if len(set(metrics)) != len(metrics):
            raise rule(f"a metric is listed twice: {metrics}", "objectives")
        several = ("study.objectives",)
        if len(metrics) > 1 and study.pruner.name != "none":
            raise rule(f"{study.pruner.name!r} cannot prune a study of several objectives "
                       "(Optuna prunes single-objective trials only): use none",
                       "pruner.name", several)
        if len(metrics) > 1 and study.sampler.name == "cmaes":
            raise rule("cmaes optimizes one objective; with several use nsga2, tpe, gp, random "
                       "or grid", "sampler.name", several)
        if len(metrics) > 1 and study.stop_when.no_improvement is not None:
            raise rule("needs one objective: a study of several objectives has a Pareto front, "
                       "no single best to improve on", "stop_when.no_improvement", several)
    for i, text in enumerate(study.constraints):
        try:
            parse_constraint(text)
        except ValueError as exc:
            raise rule(str(exc), f"constraints[{i}]") from None


class StudyConfig(Section):
    name: str = "hpo_{backbone}"
    objective_metric: str = "macro-f1"
    objective_goal: Goal = "maximize"
    max_trials: Annotated[int, Field(ge=1)] = 20
    timeout_minutes: Annotated[float | None, Field(gt=0)] = None
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    storage: str | None = None
    persist: bool = True  # keep the study on disk (SQLite under output_dir) so it can resume
    resume: bool = True  # continue an existing study (false: refuse to touch it)
    # re-runs of a trial whose process died or was interrupted
    max_retry: Annotated[int, Field(ge=0)] = 3
    # failed trials after which one run stops (null: max_trials)
    max_failures: Annotated[int | None, Field(ge=1, description="at least 1 or null (= max_trials)")] = None
    n_workers: Annotated[int, Field(ge=1)] = 1  # trials at once on this machine, one process each
    # seconds; RDB storages (SQLite, PostgreSQL, MySQL)
    heartbeat_interval: Annotated[int | None, Field(ge=1, description="at least 1 second or null")] = 60
    # seconds without a heartbeat before a trial is stale
    grace_period: Annotated[int | None, Field(ge=1, description="at least 1 second or null")] = None
    objectives: list[ObjectiveConfig] | None = None  # several objectives (else objective_metric)
    constraints: list[str] = Field(default_factory=list)  # "metric <= x" / "metric >= x"
    enqueue: list[dict[str, Any]] = Field(default_factory=list)  # parameter sets run first, once
    warm_start: WarmStartConfig | None = None
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    stop_when: StopWhenConfig = Field(default_factory=StopWhenConfig)

    @field_validator("name")
    @classmethod
    def _only_backbone_placeholder(cls, name: str) -> str:
        leftover = re.findall(r"\{([^}]*)\}", name.replace("{backbone}", ""))
        if leftover:
            raise rule(f"unknown placeholder {{{leftover[0]}}}: only {{backbone}} is filled in")
        return name

    @field_validator("storage")
    @classmethod
    def _storage_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        if not url.startswith(STORAGE_PREFIXES):
            raise rule(f"{url!r} is not a storage URL: use sqlite:///path, postgresql://..., "
                       "mysql://..., journal:path or journal+redis://host:port")
        problem = storage_target_problem(url)
        if problem:
            raise rule(problem)
        return url

    @field_validator("enqueue")
    @classmethod
    def _enqueued_values_are_scalars(cls, enqueue: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for index, params in enumerate(enqueue):
            for name, value in params.items():
                if not _scalar(value):
                    raise rule(f"must be a number, string or boolean, got {value!r}",
                               f"[{index}].{name}")
        return enqueue

    @model_validator(mode="after")
    def _objectives(self) -> StudyConfig:
        _objective_rules(self)
        return self


class ParamSpec(Section):
    """One ``search_space`` entry; its ``type`` picks the model that checks it."""

    type: str = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    def __init__(self, *args: Any, **data: Any) -> None:
        """Also ``ParamSpec(type, low, high, ...)``, positionally."""
        super().__init__(**dict(zip(("type", "low", "high"), args, strict=False)), **data)


class NumericParam(ParamSpec):
    @model_validator(mode="after")
    def _a_range(self) -> NumericParam:
        kind = self.type
        if self.low is None or self.high is None:
            raise rule(f"a {kind} parameter needs low and high")
        if not all(abs(v) < float("inf") for v in (self.low, self.high)):
            raise rule("low and high must be finite numbers")
        if self.low > self.high:
            raise rule(f"low ({self.low}) is greater than high ({self.high})")
        if self.choices is not None:
            raise rule(f"does not apply to a {kind} parameter", "choices")
        if self.log and self.low <= 0:
            raise rule(f"must be positive with log: true, got {self.low}", "low")
        if self.log and self.step is not None:
            raise rule("cannot be combined with log: true", "step")
        if self.step is not None and self.step <= 0:
            raise rule(f"must be positive, got {self.step}", "step")
        if kind == "int":
            for attr in ("low", "high", "step"):
                value = getattr(self, attr)
                if value is not None and float(value) != int(value):
                    raise rule(f"must be a whole number for an int parameter, got {value}", attr)
        return self


class FloatParam(NumericParam):
    type: Literal["float"] = "float"


class IntParam(NumericParam):
    type: Literal["int"] = "int"


class CategoricalParam(ParamSpec):
    type: Literal["categorical"] = "categorical"

    @model_validator(mode="after")
    def _choices(self) -> CategoricalParam:
        if not self.choices:
            raise rule("a categorical parameter needs a non-empty list of choices", "choices")
        for extra in ("low", "high", "step"):
            if getattr(self, extra) is not None:
                raise rule("does not apply to a categorical parameter (use choices)", extra)
        for choice in self.choices:
            if not _scalar(choice):
                raise rule(f"choices must be numbers, strings, booleans or null: {choice!r}",
                           "choices")
        return self


def _param_type(entry: Any) -> str:
    return entry.get("type", "float") if isinstance(entry, dict) else getattr(entry, "type", "")


SearchEntry = Annotated[
    Annotated[FloatParam, Tag("float")] | Annotated[IntParam, Tag("int")]
    | Annotated[CategoricalParam, Tag("categorical")],
    Discriminator(_param_type),
]


class ModelConfig(Section):
    from_config: dict[str, Any] | None = None
    trust_remote_code: bool = False
    # from_pretrained: a branch, tag or commit of a hub model
    revision: Annotated[str, non_blank("must not be empty: a branch, tag or commit, or null")
                        ] | None = None
    local_files_only: bool | None = None  # null: true when HF_HUB_OFFLINE=1
    # null: float32; the dtype the weights are loaded in
    torch_dtype: Annotated[TorchDtype | None, Field(
        description="float32 or bfloat16 or null (float16 weights cannot be fine-tuned: "
                    "use train.precision: fp16 for mixed precision)")] = None
    # backbone -> entries of from_config that differ for it (e.g. a bigger tiny model)
    per_backbone: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("from_config")
    @classmethod
    def _has_model_type(cls, spec: dict[str, Any] | None) -> dict[str, Any] | None:
        if spec is not None and "model_type" not in spec:
            raise rule("needs a model_type, e.g. {model_type: bert, hidden_size: 64}")
        return spec


class SyntheticConfig(Section):
    sentences: Annotated[int, Field(ge=4)] = 600
    seed: int = 0


class DatasetConfig(Section):
    """A 🤗 datasets input: a ``save_to_disk`` dir, or json/jsonl/csv/parquet file(s)."""

    path: str = ""
    split: str = "train"
    validation_split: str | None = None  # null: a split named "validation" when there is one
    test_split: str | None = None  # read by the final stage only (final.refit); never searched on

    @field_validator("path")
    @classmethod
    def _names_a_dataset(cls, path: str) -> str:
        if not path:
            raise rule("names no dataset: a save_to_disk dir or json/jsonl/csv/parquet file(s) "
                       "(a glob pattern is allowed)")
        return path


class ColumnsConfig(Section):
    """Which dataset columns hold what (token- or sequence-classification)."""

    tokens: str = "tokens"
    tags: str = "tags"
    text: str = "text"
    text_pair: str | None = None
    label: str = "label"


class DataConfig(Section):
    task: Task = "token-classification"
    train: str | None = None
    validation: str | None = None
    test: str | None = None  # read by the final stage only (final.refit); never searched on
    validation_split: Annotated[float, Field(gt=0, lt=1, description="between 0 and 1")] = 0.2
    synthetic: SyntheticConfig | None = None
    max_length: Annotated[int, Field(ge=8)] = 128
    dataset: DatasetConfig | None = None
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig)
    group_by_length: bool = False  # batches of similar length (less padding), seeded

    @model_validator(mode="after")
    def _one_input(self) -> DataConfig:
        if sum(x is not None for x in (self.train, self.synthetic, self.dataset)) != 1:
            raise rule("set exactly one of data.train (a file), data.synthetic (generated data) "
                       "or data.dataset (a 🤗 datasets dir or file)")
        if self.dataset is not None and self.validation is not None:
            raise rule("does not apply to data.dataset: name a split of the dataset in "
                       "data.dataset.validation_split", "validation")
        if self.dataset is not None and self.test is not None:
            raise rule("does not apply to data.dataset: name a split of the dataset in "
                       "data.dataset.test_split", "test")
        if self.synthetic is not None and self.task != "token-classification":
            raise rule("generated data exists for token-classification only", "synthetic",
                       ("data.task",))
        if self.columns.text_pair is not None and self.task != "sequence-classification":
            raise rule("sentence pairs exist for sequence-classification only",
                       "columns.text_pair", ("data.task",))
        return self


class EarlyStoppingConfig(Section):
    # epochs without improvement before a fold stops
    patience: Annotated[int, Field(ge=1, description="at least 1 epoch")] = 3
    # an improvement must beat the best by more than this
    min_delta: Annotated[float, Field(ge=0, allow_inf_nan=False,
                                      description="0 or a positive number")] = 0.0


class TrainConfig(Section):
    epochs: Count = 3
    seed: int = 42
    device: str = "auto"
    trainer: str = BUILTIN_TRAINER
    learning_rate: Positive = 5.0e-5
    batch_size: Count = 16
    weight_decay: Annotated[float, Field(ge=0, allow_inf_nan=False,
                                         description="0 or a positive finite number")] = 0.0
    warmup_ratio: Fraction = 0.0
    dropout: Annotated[float | None, Field(ge=0, le=1, allow_inf_nan=False,
                                           description="a number within [0, 1] (or null)")] = None
    max_grad_norm: Positive = 1.0
    # save full training state every N epochs (0: never)
    resume_every_epochs: Annotated[int, Field(ge=0, description="0 (never) or positive")] = 1
    # ... and every N optimizer steps within an epoch (0: never)
    resume_every_steps: Annotated[int, Field(ge=0, description="0 (never) or positive")] = 0
    # auto: bf16 where supported, else fp16 on CUDA
    precision: Precision = "fp32"
    gradient_accumulation_steps: Count = 1
    eval_batch_size: Annotated[int | None, Field(
        ge=1, description="at least 1 or null (= 2 x batch_size)")] = None  # null: 2 x batch_size
    early_stopping: EarlyStoppingConfig | None = None
    # the epoch whose value, metrics and model count
    select_epoch: Annotated[Literal["best", "last"], Field(description="best or last")] = "best"

    @field_validator("device")
    @classmethod
    def _a_device(cls, device: str) -> str:
        if not DEVICE.match(device):
            raise rule(f"must be auto, cpu, mps, cuda or cuda:N, got {device!r}")
        return device

    @field_validator("trainer")
    @classmethod
    def _a_trainer(cls, trainer: str) -> str:
        if trainer != BUILTIN_TRAINER and not re.match(r"^[\w.]+:[\w]+$", trainer):
            raise rule(f"must be 'builtin' or 'package.module:function', got {trainer!r}")
        return trainer

    @model_validator(mode="after")
    def _precision_on_its_device(self) -> TrainConfig:
        # the device itself is checked before the first trial (training.model.check_backbone)
        if self.precision == "fp16" and self.device in ("cpu", "mps"):
            raise rule(f"fp16 needs a CUDA device (train.device is {self.device}); use bf16 or "
                       "fp32 there", "precision", ("train.device",))
        return self


class KFoldConfig(Section):
    enabled: bool = True
    n_splits: Annotated[int, Field(ge=2)] = 5


class CheckpointConfig(Section):
    save_only_best: bool = True  # false: keep every trial's every fold
    keep_best: Annotated[int, Field(ge=1)] = 1


class FinalConfig(Section):
    """The final stage: the chosen trial's hyperparameters trained once on all the
    training data, then scored once on the test set (``data.test``)."""

    refit: bool = False
    # best: the trial's mean best epoch over its folds (select_epoch: best), else its epochs
    epochs: Annotated[Literal["best"] | Annotated[int, Field(ge=1)], Field(
        description="'best' or a whole number, at least 1")] = "best"
    include_validation: bool = True  # k-fold off: train on the validation part too
    # several objectives: knee (null), 'trial N' or 'METRIC <= X'
    select: Annotated[str, non_blank("must not be empty: knee, 'trial N' or 'METRIC <= X' "
                                     "(or null)")] | None = None


# MLflow refuses / and : in a registered model's name; quotes would break its search filter.
MODEL_NAME_FORBIDDEN = ("/", ":", "'", '"', "`")


class MlflowConfig(Section):
    enabled: bool = True
    tracking_uri: str | None = None
    experiment: Annotated[str, non_blank("must not be empty: name the MLflow experiment")] = "hposweep"
    log_best_checkpoint: bool | Literal["front"] = True
    log_plots: bool = False  # the study's plots under plots/ of the parent run, at the end
    register_model: str | None = None  # the registered model the shipped model is a version of

    @field_validator("log_best_checkpoint", mode="before")
    @classmethod
    def _true_false_or_front(cls, log: Any) -> Any:
        if not (isinstance(log, bool) or log == LOG_FRONT):
            raise rule(f"must be true, false or {LOG_FRONT!r}, got {log!r}")
        return log

    @field_validator("register_model")
    @classmethod
    def _a_model_name(cls, name: str | None) -> str | None:
        if name is not None and (not name.strip() or set(name) & set(MODEL_NAME_FORBIDDEN)):
            raise rule(f"must name a registered model without {' '.join(MODEL_NAME_FORBIDDEN)} "
                       f"(or be null), got {quoted(name)}")
        return name

    @model_validator(mode="after")
    def _registers_where_it_tracks(self) -> MlflowConfig:
        if self.register_model is not None and not self.enabled:
            raise rule("needs MLflow tracking on (mlflow.enabled is false): set mlflow.enabled: "
                       "true or drop register_model", "register_model", ("mlflow.enabled",))
        return self


class SweepConfig(Section):
    study: StudyConfig = Field(default_factory=StudyConfig)
    search_space: dict[str, SearchEntry] = Field(default_factory=dict)
    backbones: list[str] = Field(default_factory=list)
    model: ModelConfig = Field(default_factory=ModelConfig)
    # unchecked: the default names no data, which a loaded config must
    data: DataConfig = Field(default_factory=DataConfig.model_construct)
    train: TrainConfig = Field(default_factory=TrainConfig)
    k_fold: KFoldConfig = Field(default_factory=KFoldConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    final: FinalConfig = Field(default_factory=FinalConfig)
    output_dir: str = "outputs"

    @model_validator(mode="before")
    @classmethod
    def _searchable_names(cls, data: Any) -> Any:
        """A search space names what its trainer can take: checked before its entries."""
        if not isinstance(data, dict) or not isinstance(data.get("search_space"), dict):
            return data
        train = data.get("train")
        trainer = (train.get("trainer", BUILTIN_TRAINER) if isinstance(train, dict)
                   else getattr(train, "trainer", BUILTIN_TRAINER))
        for name in data["search_space"]:
            if name == "trust_remote_code":
                raise rule("trust_remote_code is a security setting (model.trust_remote_code), "
                           "never a search parameter", f"search_space.{name}")
            if trainer == BUILTIN_TRAINER and name not in BUILTIN_HYPERPARAMETERS:
                known = ", ".join(BUILTIN_HYPERPARAMETERS)
                raise rule(f"the built-in trainer has no hyperparameter {name!r}; it knows "
                           f"{known}", f"search_space.{name}", ("train.trainer",))
        return data

    @field_validator("backbones")
    @classmethod
    def _backbone_dirs(cls, backbones: list[str]) -> list[str]:
        if not backbones:
            raise rule("list at least one model name or local path")
        slugs = [backbone_slug(b) for b in backbones]
        if any(not b.strip() for b in backbones):
            raise rule("a backbone name is empty")
        problem = long_name(slugs)
        if problem:
            raise rule(problem)
        if len(set(slugs)) != len(slugs):
            raise rule(f"two backbones share a directory name: {slugs}")
        return backbones

    @field_validator("output_dir")
    @classmethod
    def _output_dir_named(cls, output_dir: str) -> str:
        if not output_dir:
            raise rule("must not be empty")
        problem = long_name(Path(output_dir).parts)
        if problem:
            raise rule(problem)
        return output_dir


class LoadedConfig(NamedTuple):
    """A validated config and the unresolved YAML it came from (safe to log: no secrets)."""

    config: SweepConfig
    unresolved_yaml: str
    path: Path
    deprecations: tuple[str, ...] = ()  # one line per deprecated key used, naming its source
    overrides: tuple[str, ...] = ()  # as typed

    def command(self, name: str) -> str:
        """``hposweep NAME CONFIG OVERRIDES``, as a shell would take it. Only ``run`` reads
        ``study.n_workers`` (``--workers`` passes it to the run and to each worker): the
        other commands are suggested without it."""
        import shlex

        overrides = [o for o in self.overrides
                     if name == "run" or not o.startswith("study.n_workers=")]
        return shlex.join(["hposweep", name, str(self.path), *overrides])


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
