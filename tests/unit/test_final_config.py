"""The final stage's settings: ``final.*``, ``data.test`` and ``data.dataset.test_split``
(never the study's identity), what the final model trains on and for how many epochs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from hposweep.api import Example
from hposweep.config.loading import load
from hposweep.data.readers import SweepData, final_training_data, holdout_indices
from hposweep.errors import UserError
from hposweep.results import BEST_EPOCH_ATTR
from hposweep.study.identity import check_same_objective, objective_settings
from hposweep.sweep.final import final_epochs

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"


def config(*overrides: str):  # noqa: ANN201
    return load(SMOKE, list(overrides), check_files=False).config


def test_the_final_stage_is_off_by_default_and_refits_best_epochs_with_validation() -> None:
    final = config().final
    assert (final.refit, final.epochs, final.include_validation, final.select) == (
        False, "best", True, None)
    assert config("final.epochs=4").final.epochs == 4


@pytest.mark.parametrize(("override", "message"), [
    ("final.epochs=0", "final.epochs"),
    ("final.epochs=last", "final.epochs"),
    ("final.select=knee", "final.select: picks a member of a Pareto front"),
    ("data.dataset={path: x.jsonl}", "data.dataset.test_split"),
])
def test_a_bad_final_setting_is_one_clear_line(override: str, message: str) -> None:
    extra = ["data.test=t.conll"] if override.startswith("data.dataset") else []
    with pytest.raises(UserError) as info:
        load(SMOKE, [override, *extra, *(["data.synthetic=null"] if extra else [])],
             check_files=False)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_missing_test_file_is_refused_before_any_trial(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        load(SMOKE, [f"data.test={tmp_path / 'none.conll'}"])
    assert "data.test: file not found" in str(info.value)


def test_a_test_set_is_not_part_of_the_studys_identity() -> None:
    study = optuna.create_study(study_name="s")
    check_same_objective(config(), study)
    check_same_objective(config("data.test=t.conll", "final.refit=true", "final.epochs=2"),
                         study)  # resumes: no refusal
    with_split = config("data.synthetic=null", "data.dataset={path: d, test_split: test}")
    without = config("data.synthetic=null", "data.dataset={path: d}")
    assert objective_settings(with_split) == objective_settings(without)


def examples(n: int) -> list[Example]:
    return [Example((f"w{i}",), ("O",)) for i in range(n)]


def test_the_final_model_trains_on_every_fold_or_train_and_validation() -> None:
    train, validation = examples(10), examples(3)
    assert final_training_data(config(), SweepData(train)) == train  # k-fold: every fold
    off = config("k_fold.enabled=false")
    assert final_training_data(off, SweepData(train, validation)) == train + validation
    assert final_training_data(off, SweepData(train)) == train  # the hold-out part too
    apart = config("k_fold.enabled=false", "final.include_validation=false")
    assert final_training_data(apart, SweepData(train, validation)) == train
    kept, _ = holdout_indices(10, apart.data.validation_split, apart.train.seed)
    assert final_training_data(apart, SweepData(train)) == [train[i] for i in kept]


def trial(best_epoch: float | None, epochs: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(params={} if epochs is None else {"epochs": epochs},
                           user_attrs={} if best_epoch is None else {BEST_EPOCH_ATTR: best_epoch})


def test_final_epochs_best_is_the_mean_best_epoch_rounded_else_the_trials_epochs() -> None:
    cfg = config()  # train.epochs: 3, select_epoch: best
    assert final_epochs(cfg, trial(0.5)) == 2  # epochs 1 and 2 (from 1): 1.5 -> 2
    assert final_epochs(cfg, trial(1.0)) == 2
    assert final_epochs(cfg, trial(None)) == 3  # not recorded: the trial's epochs
    assert final_epochs(cfg, trial(4.0, epochs=5)) == 5
    assert final_epochs(config("train.select_epoch=last"), trial(0.0)) == 3
    assert final_epochs(config("final.epochs=7"), trial(0.0)) == 7


def test_final_select_may_name_a_front_member_whose_checkpoint_was_not_kept() -> None:
    """A refit needs the trial's hyperparameters only: ``final.select`` chooses among every
    member of the front, where ``export --select`` chooses among the kept ones."""
    from hposweep.objectives.front import FrontMember
    from hposweep.results import StudyReport
    from hposweep.sweep.final import chosen_trial

    two = ["study.pruner.name=none", "study.objectives=[{metric: macro-f1-span, goal: maximize}, "
           "{metric: latency_ms, goal: minimize}]"]
    cfg = config(*two, "final.select='trial 4'")
    front = [FrontMember(2, {"macro-f1-span": 0.8, "latency_ms": 9.0}, {}, knee=True,
                         checkpoint="outputs/hpo/x/trial_2_00000000/checkpoint"),
             FrontMember(4, {"macro-f1-span": 0.7, "latency_ms": 5.0}, {})]
    report = StudyReport(best_trial=2, objectives=["macro-f1-span", "latency_ms"], front=front)
    assert chosen_trial(cfg, report) == 4
    with pytest.raises(UserError, match="names no member"):
        chosen_trial(config(*two, "final.select='trial 3'"), report)
