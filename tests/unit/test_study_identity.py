"""A resumed study must keep the settings that give its values their meaning; a refusal
shows each value as the config writes it, and a default the search space overrides for
every trial is no such setting."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from hposweep.config.loading import load
from hposweep.errors import UserError
from hposweep.results import OBJECTIVE_ATTR
from hposweep.study.identity import check_same_objective

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
GRAD = "search_space.gradient_accumulation_steps={type: categorical, choices: [1, 2]}"


def made_with(*overrides: str) -> optuna.Study:
    study = optuna.create_study(study_name="s")
    check_same_objective(load(SMOKE, list(overrides)).config, study)
    return study


def refusal(study: optuna.Study, *overrides: str) -> str:
    with pytest.raises(UserError) as info:
        check_same_objective(load(SMOKE, list(overrides)).config, study)
    return str(info.value)


@pytest.mark.parametrize(("made", "resumed", "shown"), [
    ([], ["train.select_epoch=last"], "train.select_epoch=best, this config has train.select_epoch=last"),
    (["train.select_epoch=last"], [], "train.select_epoch=last, this config has train.select_epoch=best"),
    ([], ["train.gradient_accumulation_steps=2"],
     "train.gradient_accumulation_steps=1, this config has train.gradient_accumulation_steps=2"),
    ([], ["train.early_stopping={patience: 2}"],
     "train.early_stopping=null, this config has "
     "train.early_stopping={patience: 2, min_delta: 0.0}"),
    ([], ["data.group_by_length=true"],
     "data.group_by_length=false, this config has data.group_by_length=true"),
    (["k_fold.enabled=false"], [], "k_fold.enabled=false, this config has k_fold.n_splits=2"),
    ([], ["train.epochs=2"], "train.epochs=3, this config has train.epochs=2"),
])
def test_a_refused_resume_shows_values_as_the_config_writes_them(
        made: list[str], resumed: list[str], shown: str) -> None:
    message = refusal(made_with(*made), *resumed)
    assert message.startswith(f"study 's' was made with {shown}: its trials would not be")
    assert "None" not in message


@pytest.mark.parametrize("overrides", [
    ["train.learning_rate=0.1"],  # smoke.yaml searches the learning rate
    [GRAD, "train.gradient_accumulation_steps=2"],
])
def test_a_default_the_search_space_overrides_may_change(overrides: list[str]) -> None:
    study = made_with(*overrides[:-1])
    check_same_objective(load(SMOKE, overrides).config, study)


def test_a_study_stored_before_still_resumes_with_a_changed_searched_default() -> None:
    study = made_with()
    stored = study.user_attrs[OBJECTIVE_ATTR]
    assert stored["train.learning_rate"] == 5e-5, "the stored identity keeps every default"
    check_same_objective(load(SMOKE, ["train.learning_rate=0.1"]).config, study)
    assert study.user_attrs[OBJECTIVE_ATTR] == stored, "what the study stored is kept"
