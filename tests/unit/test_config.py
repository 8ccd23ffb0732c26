"""Config loading: every kind of bad input is one clear ConfigError naming file and key."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from hposweep.config.loading import load
from hposweep.config.schema import backbone_slug, study_name_for
from hposweep.errors import ConfigError

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"


def error_of(path: Path | str, *overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(path, list(overrides))
    message = str(info.value)
    assert "\n" not in message, "a config error is one line"
    return message


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_smoke_config_loads_with_its_values() -> None:
    cfg = load(SMOKE).config
    assert cfg.study.max_trials == 4
    assert cfg.k_fold.n_splits == 2
    assert cfg.search_space["batch_size"].choices == [16, 32]
    assert cfg.checkpoint.save_only_best is True


def test_dotlist_overrides_apply_with_types() -> None:
    cfg = load(SMOKE, ["study.max_trials=40", "train.epochs=1", "k_fold.enabled=false"]).config
    assert (cfg.study.max_trials, cfg.train.epochs, cfg.k_fold.enabled) == (40, 1, False)


def test_unknown_key_suggests_the_right_one() -> None:
    message = error_of(SMOKE, "study.n_trails=3")
    assert "study.n_trails" in message and "did you mean 'max_trials'" in message


def test_unknown_key_in_file_names_the_file(tmp_path: Path) -> None:
    text = SMOKE.read_text().replace("  max_trials: 4", "  max_trails: 4")
    message = error_of(write(tmp_path, text))
    assert str(tmp_path / "c.yaml") in message and "study.max_trails" in message


def test_wrong_type_names_the_key() -> None:
    message = error_of(SMOKE, "study.max_trials=many")
    assert "study.max_trials" in message and "many" in message


@pytest.mark.parametrize(
    ("override", "key", "problem"),
    [
        ("search_space.learning_rate.low=1", "search_space.learning_rate", "greater than high"),
        ("k_fold.n_splits=1", "k_fold.n_splits", "at least 2"),
        ("study.sampler.name=bayes", "study.sampler.name", "unknown sampler"),
        ("study.pruner.name=early", "study.pruner.name", "unknown pruner"),
        ("search_space.dropout.type=uniform", "search_space.dropout.type", "unknown distribution"),
        ("study.name=../escape", "study.name", "not a safe file name"),
        ("study.name=a/b", "study.name", "not a safe file name"),
        ("study.name=x_{model}", "study.name", "unknown placeholder"),
        ("study.objective_goal=up", "study.objective_goal", "maximize"),
        ("study.objective_metric=bleu", "study.objective_metric", "does not report"),
        ("study.max_trials=0", "study.max_trials", "at least 1"),
        ("train.device=gpu", "train.device", "auto, cpu"),
        ("checkpoint.keep_best=0", "checkpoint.keep_best", "at least 1"),
        ("search_space.lr.type=float", "search_space.lr", "no hyperparameter 'lr'"),
        ("study.storage=redis://x", "study.storage", "not a storage URL"),
        ("data.train=missing.conll", "data", "exactly one"),
        ("train.trainer=not a path", "train.trainer", "package.module:function"),
    ],
)
def test_impossible_values_are_rejected(override: str, key: str, problem: str) -> None:
    message = error_of(SMOKE, override)
    assert f"{key}:" in message and problem in message


def test_log_scale_needs_positive_low() -> None:
    assert "with log: true" in error_of(SMOKE, "search_space.learning_rate.low=0")


def test_grid_sampler_needs_steps_for_floats() -> None:
    assert "grid sampler needs a step" in error_of(SMOKE, "study.sampler.name=grid")


def test_missing_data_file_is_named(tmp_path: Path) -> None:
    message = error_of(SMOKE, "data.synthetic=null", f"data.train={tmp_path}/nope.conll")
    assert "data.train" in message and "nope.conll" in message


def test_missing_config_file() -> None:
    assert "config file not found" in error_of("no/such/file.yaml")


def test_malformed_yaml_gives_position(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "study: {name: [x\n"))
    assert "line 2, column 1" in message and "started at line 1" in message


def test_python_object_tags_are_refused(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "study: !!python/object/apply:os.system ['echo pwned']\n"))
    assert "not valid YAML" in message


def test_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    assert "not valid YAML" in error_of(write(tmp_path, "\n".join(lines) + "\n"))


def test_top_level_list_is_refused(tmp_path: Path) -> None:
    assert "top level must be a mapping" in error_of(write(tmp_path, "- 1\n- 2\n"))


@pytest.mark.parametrize(("old", "new"), [("study_name", "study.name"),
                                          ("storage_path", "study.storage")])
def test_seed_spelling_names_the_new_key(tmp_path: Path, old: str, new: str) -> None:
    text = SMOKE.read_text().replace("checkpoint:\n", f"checkpoint:\n  {old}: x\n")
    message = error_of(write(tmp_path, text))
    assert f"checkpoint.{old}" in message and new in message


def test_override_without_equals_sign() -> None:
    assert "expected key=value" in error_of(SMOKE, "study.max_trials")


def test_missing_env_var_is_a_config_error() -> None:
    message = error_of(SMOKE, "study.storage=${oc.env:HPOSWEEP_TEST_UNSET_VAR}")
    assert "study.storage" in message and "HPOSWEEP_TEST_UNSET_VAR" in message


def test_env_secrets_stay_out_of_the_unresolved_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPOSWEEP_TEST_SECRET", "s3cr3t-value")
    loaded = load(SMOKE, ["mlflow.experiment=${oc.env:HPOSWEEP_TEST_SECRET}"])
    assert loaded.config.mlflow.experiment == "s3cr3t-value"
    assert "s3cr3t-value" not in loaded.unresolved_yaml
    assert "${oc.env:HPOSWEEP_TEST_SECRET}" in loaded.unresolved_yaml


def test_several_backbones_need_distinct_study_names() -> None:
    message = error_of(SMOKE, "study.name=fixed", "backbones=[a,b]")
    assert "study.name" in message and "{backbone}" in message


def test_backbone_slug_and_study_name() -> None:
    assert backbone_slug("distilbert-base-cased") == "distilbert-base-cased"
    assert backbone_slug("/models/my bert/") == "my_bert"
    assert backbone_slug("org/model") == "model"
    cfg = load(SMOKE, ["backbones=[/tmp/x/tiny]"]).config
    assert study_name_for(cfg, cfg.backbones[0]) == "smoke_tiny"


def test_a_bad_override_is_named_alone() -> None:
    message = error_of(SMOKE, "train.epochs=2", "data.train=[x", "study.max_trials=3")
    assert message.startswith("bad override 'data.train=[x': ")


def test_only_the_best_checkpoint_is_kept_by_default(tmp_path: Path) -> None:
    text = SMOKE.read_text().replace("  save_only_best: true\n", "")
    assert "save_only_best" not in text
    assert load(write(tmp_path, text)).config.checkpoint.save_only_best is True
    keep_all = load(write(tmp_path, text), ["checkpoint.save_only_best=false"]).config
    assert keep_all.checkpoint.save_only_best is False


@pytest.mark.parametrize(("overrides", "key", "problem"), [
    (["train.learning_rate=0"], "train.learning_rate", "positive finite"),
    (["train.learning_rate=-1e-5"], "train.learning_rate", "positive finite"),
    (["train.learning_rate=nan"], "train.learning_rate", "positive finite"),
    (["train.learning_rate=inf"], "train.learning_rate", "positive finite"),
    (["train.batch_size=0"], "train.batch_size", "at least 1"),
    (["train.epochs=0"], "train.epochs", "at least 1"),
    (["train.dropout=1.5"], "train.dropout", "within [0, 1]"),
    (["train.dropout=-0.1"], "train.dropout", "within [0, 1]"),
    (["train.warmup_ratio=1.5"], "train.warmup_ratio", "within [0, 1]"),
    (["train.weight_decay=-0.1"], "train.weight_decay", "0 or a positive"),
    (["train.max_grad_norm=0"], "train.max_grad_norm", "positive finite"),
    (["train.max_grad_norm=inf"], "train.max_grad_norm", "positive finite"),
    (["search_space.batch_size.choices=[0,16]"], "search_space.batch_size.choices", "at least 1"),
    (["search_space.batch_size.choices=[16.5]"], "search_space.batch_size.choices", "whole number"),
    (["search_space.batch_size.choices=[big]"], "search_space.batch_size.choices", "whole number"),
    (["search_space.dropout.high=1.5"], "search_space.dropout.high", "within [0, 1]"),
    (["search_space.dropout.low=-0.1"], "search_space.dropout.low", "within [0, 1]"),
    (["search_space.warmup_ratio.high=1.5"], "search_space.warmup_ratio.high", "within [0, 1]"),
    (["search_space.weight_decay.low=-0.1"], "search_space.weight_decay.low", "0 or a positive"),
    (["search_space.learning_rate.log=false", "search_space.learning_rate.low=0"],
     "search_space.learning_rate.low", "positive finite"),
    (["search_space.epochs.type=int", "search_space.epochs.low=0", "search_space.epochs.high=3"],
     "search_space.epochs.low", "at least 1"),
    (["study.pruner.reduction_factor=1"], "study.pruner.reduction_factor", "at least 2"),
    (["study.pruner.min_resource=0"], "study.pruner.min_resource", "at least 1"),
    (["study.pruner.n_startup_trials=-1"], "study.pruner.n_startup_trials", "0 or more"),
    (["study.pruner.n_warmup_steps=-1"], "study.pruner.n_warmup_steps", "0 or more"),
    (["mlflow.experiment=''"], "mlflow.experiment", "must not be empty"),
    (["mlflow.experiment=' '"], "mlflow.experiment", "must not be empty"),
    (["study.max_failures=0"], "study.max_failures", "at least 1 or null"),
])
def test_values_no_trial_could_use_are_rejected(overrides: list[str], key: str, problem: str
                                                ) -> None:
    message = error_of(SMOKE, *overrides)
    assert f": {key}: " in message and problem in message


def test_a_custom_trainers_search_space_has_no_builtin_bounds() -> None:
    cfg = load(SMOKE, ["train.trainer=fake_trainers:quadratic", "search_space.dropout.high=2"]).config
    assert cfg.search_space["dropout"].high == 2


def test_max_failures_defaults_to_null_and_takes_a_count() -> None:
    assert load(SMOKE).config.study.max_failures is None
    assert load(SMOKE, ["study.max_failures=3"]).config.study.max_failures == 3


def test_reading_commands_can_load_without_the_data_files(tmp_path: Path) -> None:
    gone = ["data.synthetic=null", f"data.train={tmp_path}/gone.conll",
            "k_fold.enabled=false", f"data.validation={tmp_path}/gone-too.conll"]
    assert "data.train: file not found" in error_of(SMOKE, *gone)
    cfg = load(SMOKE, gone, check_files=False).config
    assert (cfg.data.train, cfg.data.validation) == (f"{tmp_path}/gone.conll",
                                                     f"{tmp_path}/gone-too.conll")


def validate_in_subprocess(path: Path, *overrides: str, timeout: float = 120
                           ) -> tuple[int, str, float]:
    """``hposweep validate`` in its own process, so that a crash shows as its exit status."""
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "hposweep", "validate", str(path), *overrides],
                          capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stderr, time.monotonic() - start


@pytest.mark.slow  # starts a process
def test_deeply_nested_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = write(tmp_path, "study:\n  name: x\nbackbones: " + "[" * 50_000 + "\n")
    code, stderr, _ = validate_in_subprocess(path)
    assert (code, stderr) == (2, f"error: {path}: line 3: [ and {{ nest deeper than 64 levels\n")


@pytest.mark.slow  # starts a process
def test_deeply_nested_override_is_refused_before_parsing() -> None:
    code, stderr, _ = validate_in_subprocess(SMOKE, "backbones=" + "[" * 50_000)
    assert code == 2
    assert stderr == ("error: bad override 'backbones=[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                      "…' (50,010 characters): [ and { nest deeper than 64 levels\n")


@pytest.mark.slow  # starts a process
def test_huge_file_is_refused_unread(tmp_path: Path) -> None:
    text = SMOKE.read_text().replace("experiment: hposweep-smoke", "experiment: " + "x" * 10_000_000)
    path = write(tmp_path, text)
    code, stderr, seconds = validate_in_subprocess(path)
    assert (code, stderr) == (2, f"error: {path}: {len(text):,} bytes; a config file may have "
                                 "at most 1,048,576 (1 MiB)\n")
    assert seconds < 5


@pytest.mark.slow  # starts a process
def test_the_nesting_scan_is_quick_on_unclosed_quotes(tmp_path: Path) -> None:
    path = write(tmp_path, 'study: "' + '\\"' * 500_000 + "\n")  # one escaped quote after another
    code, _, seconds = validate_in_subprocess(path, timeout=30)
    assert code == 2 and seconds < 5


def test_huge_override_is_refused() -> None:
    message = error_of(SMOKE, "mlflow.experiment=" + "x" * 70_000)
    assert message == ("bad override 'mlflow.experiment=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…' "
                       "(70,018 characters): an override may have at most 65,536 characters")


def test_brackets_in_quotes_and_comments_do_not_count(tmp_path: Path) -> None:
    deep = "[" * 100
    text = SMOKE.read_text().replace("experiment: hposweep-smoke", f"experiment: '{deep}'  # {deep}")
    assert load(write(tmp_path, text), [f'mlflow.tracking_uri="{deep}"']).config.mlflow.experiment == deep


def test_deep_block_nesting_is_a_clear_error(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "study:\n" + "- " * 400 + "x\n"))
    assert message == f"{tmp_path / 'c.yaml'}: not valid YAML: nested too deeply to read"


def test_a_long_value_is_cut_short_in_a_message(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "study: " + "x" * 100_000 + "\n"))
    assert message.startswith(f"{tmp_path / 'c.yaml'}: study is a section: set its keys one by one")
    assert message.endswith("x…' (100,000 characters)") and len(message) < 400


LONG = "x" * 256


@pytest.mark.parametrize(("override", "key", "problem"), [
    ("study.storage=sqlite:///", "study.storage", "use sqlite:///path/to/study.db"),
    ("study.storage='journal:'", "study.storage", "use journal:path/to/study.log"),
    ("study.storage=journal+redis://", "study.storage", "use journal+redis://host:port/db"),
    ("study.storage=journal+redis://:pw@:6379/0", "study.storage", "use journal+redis://host:port"),
    ("output_dir=/dev/null", "output_dir", "'/dev/null' exists and is not a directory"),
    (f"output_dir=outputs/{LONG}/x", "output_dir", "is longer than 255 bytes as a directory name"),
    ("output_dir=" + "é" * 128, "output_dir", "is longer than 255 bytes"),  # 128 characters
    (f"backbones=[org/{LONG}]", "backbones", "is longer than 255 bytes as a directory name"),
    (f"study.storage=sqlite:///outputs/{LONG}.db", "study.storage", "255 bytes as a file or"),
    (f"study.storage=journal:{LONG}/study.log", "study.storage", "is longer than 255 bytes"),
])
def test_paths_the_sweep_cannot_create_are_rejected(override: str, key: str, problem: str) -> None:
    message = error_of(SMOKE, override)
    assert f": {key}: " in message and problem in message
    assert "pw" not in message


def test_output_dir_may_be_an_existing_dir(tmp_path: Path) -> None:
    assert load(SMOKE, [f"output_dir={tmp_path}"]).config.output_dir == str(tmp_path)


def test_a_file_that_is_not_utf8_text(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"study:\n  name: caf\xe9\n")
    assert error_of(path) == f"{path}: not UTF-8 text (byte 18)"


def test_a_suggested_command_leaves_out_the_worker_count_that_only_run_reads() -> None:
    """``--workers K`` passes ``study.n_workers`` to the run and its workers; the refit and
    dashboard commands a summary suggests are the user's own, without it."""
    loaded = load(SMOKE, ["study.max_trials=12", "study.n_workers=1"])
    assert loaded.command("refit") == f"hposweep refit {SMOKE} study.max_trials=12"
    assert loaded.command("run") == f"hposweep run {SMOKE} study.max_trials=12 study.n_workers=1"
