"""Override errors in the user's words: the override quoted exactly as typed, what its key
expects, and a problem caused by an override blamed on that override, not on the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hposweep.config.loading import load
from hposweep.errors import ConfigError

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"


def error_of(*overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(SMOKE, list(overrides))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_an_unparsable_value_is_quoted_as_typed_with_the_way_to_write_it() -> None:
    message = error_of("backbones=[a,b]x")
    assert message.startswith("bad override 'backbones=[a,b]x': its value '[a,b]x' ")
    assert "key=[a,b]" in message


@pytest.mark.parametrize(("override", "expected"), [
    ("backbones=tiny-bert", "backbones must be a list: 'backbones=[tiny-bert]'"),
    ("study.max_trials=many", "study.max_trials must be a whole number"),
    ("k_fold.enabled=maybe", "k_fold.enabled must be true or false"),
    ("search_space.dropout.high=abc", "search_space.dropout.high must be a number"),
    ("model.from_config=3", "model.from_config must be a mapping"),
    ("study.sampler=tpe", "study.sampler is a section: set its keys one by one"),
])
def test_a_value_of_the_wrong_kind_says_what_the_key_expects(override: str,
                                                            expected: str) -> None:
    message = error_of(override)
    assert message.startswith(f"bad override {override!r}: {expected}")
    for jargon in ("AnyNode", "ListConfig", "Integer", "SamplerConfig", "Dict[str"):
        assert jargon not in message


def test_the_faulty_override_is_named_among_good_ones() -> None:
    message = error_of("study.max_trials=5", "backbones=tiny-bert", "train.epochs=1")
    assert message.startswith("bad override 'backbones=tiny-bert'")


def test_a_missing_data_file_set_by_an_override_names_the_override_and_the_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    message = error_of("data.train=nope.conll", "data.synthetic=null")
    assert str(SMOKE) not in message
    assert message.startswith("override 'data.train=nope.conll': data.train: file not found: "
                              "nope.conll")
    assert f"relative to the working directory, {os.getcwd()}" in message


def test_a_missing_relative_dataset_path_names_the_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    message = error_of("data.dataset={path: data/mnli}", "data.synthetic=null")
    assert "data.dataset.path: not found: data/mnli (relative to the working directory, " \
        f"{os.getcwd()})" in message


def test_an_absolute_missing_path_is_not_called_relative(tmp_path: Path) -> None:
    message = error_of(f"data.train={tmp_path / 'nope.conll'}", "data.synthetic=null")
    assert "file not found" in message and "relative" not in message


def test_a_value_check_failing_on_an_override_names_it() -> None:
    message = error_of("search_space.dropout.high=2")
    assert message.startswith("override 'search_space.dropout.high=2': "
                              "search_space.dropout.high: ")


def test_a_problem_in_the_file_still_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text(SMOKE.read_text().replace("max_trials: 4", "max_trials: 0"))
    with pytest.raises(ConfigError) as info:
        load(bad, ["train.epochs=1"])
    assert str(info.value).startswith(f"{bad}: study.max_trials: ")


def test_an_override_with_a_password_is_named_by_its_key_only() -> None:
    message = error_of("study.storage=journal+redis://:secret@:6379/0")
    assert "secret" not in message and message.startswith("override of study.storage: ")
