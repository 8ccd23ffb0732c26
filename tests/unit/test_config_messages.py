"""Config errors say where the problem came from (the file or the override that caused it)
in one wording, whichever of the two it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from hposweep.config.schema import load
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
