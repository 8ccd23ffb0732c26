"""Config errors say where the problem came from (the file or the override that caused it)
in one wording, whichever of the two it came from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hposweep.config.loading import load
from hposweep.errors import ConfigError

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
JARGON = ("Integer", "could not be converted", "AnyNode", "ListConfig", "StudyConfig")


def error_of(path: Path, *overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(path, list(overrides))
    message = str(info.value)
    assert "\n" not in message
    return message


def smoke_with(tmp_path: Path, old: str, new: str) -> Path:
    text = SMOKE.read_text()
    assert old in text
    path = tmp_path / "base.yaml"
    path.write_text(text.replace(old, new))
    return path


WILCOXON_FILE = ("pruner: {name: median, n_startup_trials: 2, n_warmup_steps: 1}",
                 "pruner: {name: wilcoxon}")


@pytest.mark.parametrize(("n_splits", "override", "expected"), [
    ("5", "k_fold.n_splits=2", "study.pruner: wilcoxon decides after 2 folds"),
    ("5", "k_fold.enabled=false", "study.pruner.name: wilcoxon prunes between folds"),
    ("5", "study.pruner.n_startup_steps=5", "study.pruner: wilcoxon decides after 5 folds"),
])
def test_a_cross_field_problem_an_override_caused_names_the_override(
        tmp_path: Path, n_splits: str, override: str, expected: str) -> None:
    base = smoke_with(tmp_path, "n_splits: 2", f"n_splits: {n_splits}")
    base.write_text(base.read_text().replace(*WILCOXON_FILE))
    message = error_of(base, override)
    assert message.startswith(f"override {override!r}: {expected}")
    assert str(base) not in message


def test_a_cross_field_problem_of_the_file_alone_names_the_file(tmp_path: Path) -> None:
    base = smoke_with(tmp_path, *WILCOXON_FILE)
    assert error_of(base, "train.epochs=1").startswith(f"{base}: study.pruner: wilcoxon decides")


@pytest.mark.parametrize(("yaml_old", "yaml_new", "override", "problem"), [
    ("max_trials: 4", "max_trials: three", "study.max_trials=three",
     "study.max_trials must be a whole number"),
    ("enabled: true\n  n_splits", "enabled: maybe\n  n_splits", "k_fold.enabled=maybe",
     "k_fold.enabled must be true or false"),
    ("backbones: [tiny-bert]", "backbones: tiny-bert", "backbones=tiny-bert",
     "backbones must be a list"),
])
def test_a_wrong_type_reads_the_same_in_the_file_as_in_an_override(
        tmp_path: Path, yaml_old: str, yaml_new: str, override: str, problem: str) -> None:
    in_file = error_of(smoke_with(tmp_path, yaml_old, yaml_new))
    by_override = error_of(SMOKE, override)
    assert in_file.startswith(f"{tmp_path / 'base.yaml'}: {problem}")
    assert by_override.startswith(f"bad override {override!r}: {problem}")
    value = override.split("=", 1)[1]
    for message in (in_file, by_override):
        assert f"got {value!r}" in message
        assert not any(jargon in message for jargon in JARGON), message


def test_an_override_split_by_the_shell_is_told_to_quote_the_whole_override() -> None:
    message = error_of(SMOKE, "backbones=[tiny-a,", "tiny-b]")
    assert message == ("bad override 'backbones=[tiny-a,': the shell split an unquoted override "
                       "at a space: quote the whole override, e.g. 'backbones=[tiny-a, tiny-b]'")


def test_an_unclosed_bracket_alone_is_told_to_quote_the_whole_override() -> None:
    message = error_of(SMOKE, "backbones=[tiny-a,")
    assert "quote the whole override" in message and "'\"[a]\"'" not in message


@pytest.mark.parametrize(("old", "new", "value"), [("checkpoint.enabled", "study.persist", False),
                                                   ("checkpoint.auto_resume", "study.resume", False)])
def test_a_deprecated_spelling_still_works_with_a_one_line_warning(
        tmp_path: Path, old: str, new: str, value: bool) -> None:
    section, key = old.split(".")
    in_file = tmp_path / "old.yaml"
    in_file.write_text(SMOKE.read_text().replace(f"{section}:\n", f"{section}:\n  {key}: false\n"))
    by_override = load(SMOKE, [f"{old}=false"])
    from_file = load(in_file)
    for loaded in (by_override, from_file):
        assert getattr(loaded.config.study, new.split(".")[1]) is value
        written = yaml.safe_load(loaded.unresolved_yaml)
        assert written["study"][new.split(".")[1]] is False and key not in written[section]
    assert by_override.deprecations == (f"override '{old}=false': {old} is deprecated: "
                                        f"write {new}",)
    assert from_file.deprecations == (f"{in_file}: {old} is deprecated: write {new}",)


def test_the_new_spellings_need_no_warning() -> None:
    loaded = load(SMOKE, ["study.persist=false", "study.resume=false"])
    assert (loaded.config.study.persist, loaded.config.study.resume) == (False, False)
    assert loaded.deprecations == ()


def test_both_spellings_in_one_file_are_refused(tmp_path: Path) -> None:
    both = smoke_with(tmp_path, "checkpoint:\n", "checkpoint:\n  enabled: false\n")
    both.write_text(both.read_text().replace("study:\n", "study:\n  persist: true\n"))
    assert error_of(both) == (f"{both}: checkpoint.enabled: set study.persist only "
                              "(checkpoint.enabled is its deprecated spelling)")


def test_an_old_spelling_and_a_later_override_of_the_new_one_take_the_override(
        tmp_path: Path) -> None:
    old = smoke_with(tmp_path, "checkpoint:\n", "checkpoint:\n  enabled: false\n")
    assert load(old, ["study.persist=true"]).config.study.persist is True
    assert load(SMOKE, ["checkpoint.enabled=false", "study.persist=true"]).config.study.persist


def test_the_command_line_prints_the_deprecation_once_on_stderr() -> None:
    done = subprocess.run([sys.executable, "-m", "hposweep", "validate", str(SMOKE),
                           "checkpoint.auto_resume=false"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0
    assert done.stderr == ("warning: override 'checkpoint.auto_resume=false': "
                           "checkpoint.auto_resume is deprecated: write study.resume\n")
    assert "  resume: false\n" in done.stdout


@pytest.mark.parametrize(("override", "message"), [
    ('mlflow.experiment="  "', "mlflow.experiment: must not be empty: name the MLflow experiment"),
    ('study.objectives=[{metric: " ", goal: maximize}]', "study.objectives[0].metric: names no metric"),
])
def test_a_blank_name_is_refused_naming_its_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load(SMOKE, [override])
    assert str(refused.value) == f"override '{override}': {message}"


@pytest.mark.parametrize("name", ["team/ner", "ner:v2", "it's", "  "])
def test_a_registered_model_name_mlflow_cannot_take_is_refused(name: str) -> None:
    message = error_of(SMOKE, f'mlflow.register_model="{name}"')
    assert message.startswith("override ") and message.endswith(
        f"""mlflow.register_model: must name a registered model without / : ' " ` (or be null), """
        f"got {name!r}")


def test_registering_a_model_with_tracking_off_is_refused_naming_both_keys() -> None:
    message = error_of(SMOKE, "mlflow.enabled=false", "mlflow.register_model=ner")
    assert "mlflow.register_model: needs MLflow tracking on (mlflow.enabled is false)" in message
    assert load(SMOKE, ["mlflow.register_model=ner"]).config.mlflow.register_model == "ner"
