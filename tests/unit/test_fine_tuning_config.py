"""Config of the fine-tuning options: bad values are one clear line naming the key (exit
2 before anything runs), and the settings that change a trial's value are kept with the
study, without refusing the studies made before they existed."""

from __future__ import annotations

from pathlib import Path

import pytest

from hposweep.config.loading import load
from hposweep.errors import ConfigError
from hposweep.study.identity import objective_settings
from tests.conftest import SMOKE


@pytest.mark.parametrize(("override", "message"), [
    ("train.precision=fp8", "train.precision: must be one of fp32, bf16, fp16, auto, got 'fp8'"),
    ("train.select_epoch=first", "train.select_epoch: must be best or last"),
    ("train.gradient_accumulation_steps=0", "train.gradient_accumulation_steps: must be a whole number"),
    ("train.eval_batch_size=0", "train.eval_batch_size: must be at least 1 or null"),
    ("train.early_stopping.patience=0", "train.early_stopping.patience: must be at least 1 epoch"),
    ("train.early_stopping.min_delta=-1", "train.early_stopping.min_delta: must be 0 or a positive"),
    ("model.torch_dtype=float16", "model.torch_dtype: must be float32 or bfloat16 or null"),
    ("model.revision=' '", "model.revision: must not be empty"),
    ("data.dataset.path=/nonexistent/ds", "data: set exactly one of data.train"),
    ("search_space.gradient_accumulation_steps={type: int, low: 0, high: 4}",
     "search_space.gradient_accumulation_steps.low: must be a whole number, at least 1"),
])
def test_bad_fine_tuning_values_name_their_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(SMOKE, [override])
    assert message in str(caught.value)


@pytest.mark.parametrize(("overrides", "message"), [
    (["data.dataset.path=/nonexistent/ds"], "data.dataset.path: not found: /nonexistent/ds"),
    (["data.dataset.path=.", "data.columns.text_pair=b"],
     "data.columns.text_pair: sentence pairs exist for sequence-classification only"),
    (["data.dataset.path=.", "data.validation=x.jsonl"], "data.validation: does not apply"),
])
def test_bad_dataset_input_names_its_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(SMOKE, ["data.synthetic=null", *overrides])
    assert message in str(caught.value)


def test_gradient_accumulation_steps_is_searchable() -> None:
    cfg = load(SMOKE, ["search_space.gradient_accumulation_steps={type: int, low: 1, high: 4}"]).config
    assert "gradient_accumulation_steps" in cfg.search_space


def test_the_study_keeps_the_settings_that_change_values_and_old_studies_still_match() -> None:
    """A study made before these settings existed stored none of them: with the settings
    that reproduce its values (the last epoch, no early stopping...) the config matches it."""
    old_keys = set(objective_settings(load(SMOKE, ["train.select_epoch=last"]).config))
    assert not any(k.startswith(("train.select_epoch", "train.early", "train.gradient",
                                 "data.group", "data.dataset")) for k in old_keys)
    new = objective_settings(load(SMOKE, ["train.early_stopping.patience=2",
                                          "train.gradient_accumulation_steps=2",
                                          "data.group_by_length=true"]).config)
    assert new["train.select_epoch"] == "best"
    assert new["train.early_stopping"] == {"patience": 2, "min_delta": 0.0}
    assert new["train.gradient_accumulation_steps"] == 2 and new["data.group_by_length"] is True
    assert "train.precision" not in new, "precision, like the device, may change"


def test_a_dataset_is_identified_by_its_content_not_its_path(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "data.parquet").write_bytes(b"same bytes")
    settings = [objective_settings(load(SMOKE, ["data.synthetic=null",
                                                f"data.dataset.path={tmp_path / n}"]).config)
                for n in ("a", "b")]
    assert settings[0]["data.dataset"] == settings[1]["data.dataset"]
    assert settings[0]["data.dataset"]["path"].startswith("sha256:")
    (tmp_path / "b" / "data.parquet").write_bytes(b"other bytes")
    changed = objective_settings(load(SMOKE, ["data.synthetic=null",
                                              f"data.dataset.path={tmp_path / 'b'}"]).config)
    assert changed["data.dataset"] != settings[0]["data.dataset"]
