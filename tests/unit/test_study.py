"""Sampler and pruner names map to the Optuna objects they promise, with their settings."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from hposweep.config.loading import load
from hposweep.results import WARM_START_ATTR
from hposweep.study.pruners import FoldMedianPruner
from hposweep.study.samplers import make_pruner, make_sampler
from hposweep.study.seeds import study_stream

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"


@pytest.mark.parametrize(("name", "cls"), [
    ("tpe", optuna.samplers.TPESampler), ("random", optuna.samplers.RandomSampler),
    ("cmaes", optuna.samplers.CmaEsSampler), ("gp", optuna.samplers.GPSampler),
    ("nsga2", optuna.samplers.NSGAIISampler),
])
def test_each_sampler_name_gives_its_sampler(name: str, cls: type) -> None:
    """(``grid`` is hposweep's own: tests/unit/test_grid.py.)"""
    sampler = make_sampler(load(SMOKE, [f"study.sampler.name={name}"]).config, "study", 0)
    assert type(sampler) is cls


def draws(sampler: optuna.samplers.BaseSampler) -> list[float]:
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    return [t.params["x"] for t in study.trials]


def test_each_study_and_trial_number_has_its_own_reproducible_seed_stream() -> None:
    cfg = load(SMOKE, ["study.sampler.name=random"]).config
    assert draws(make_sampler(cfg, "a", 4)) == draws(make_sampler(cfg, "a", 4))
    assert draws(make_sampler(cfg, "a", 5)) != draws(make_sampler(cfg, "a", 4))
    assert draws(make_sampler(cfg, "b", 4)) != draws(make_sampler(cfg, "a", 4))
    unseeded = load(SMOKE, ["study.sampler.name=random", "study.sampler.seed=null"]).config
    assert draws(make_sampler(unseeded, "a", 4)) != draws(make_sampler(unseeded, "a", 4))


def test_a_studys_stream_is_its_name_and_the_studies_it_was_warm_started_from() -> None:
    def queued(key: str) -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING,
                                         user_attrs={WARM_START_ATTR: {"key": key}})

    assert study_stream("s", []) == study_stream("s", [queued('enqueue:{"x": 1}')])
    warm = study_stream("s", [queued("warm_start:sqlite:///a.db#s")] * 2)
    assert warm not in (study_stream("s", []), study_stream("t", []))
    assert warm == study_stream("s", [queued("warm_start:sqlite:///a.db#s")])


@pytest.mark.parametrize(("overrides", "cls", "settings"), [
    # Optuna's median rule on the current fold's steps (hposweep.study.pruners)
    (["study.pruner.name=median", "study.pruner.n_startup_trials=7", "study.pruner.n_warmup_steps=3",
      "train.epochs=4"],
     FoldMedianPruner, {"_n_startup_trials": 7, "_n_warmup_steps": 3, "_epochs": 4, "_k_fold": True}),
    # without k-fold every step is the median rule's (no fold 0 of its own)
    (["study.pruner.name=median", "k_fold.enabled=false"], FoldMedianPruner, {"_k_fold": False}),
    # the resource is one step per epoch per fold: 4 epochs x 3 folds
    (["study.pruner.name=hyperband", "study.pruner.min_resource=2", "study.pruner.reduction_factor=4",
      "train.epochs=4", "k_fold.n_splits=3"],
     optuna.pruners.HyperbandPruner, {"_min_resource": 2, "_reduction_factor": 4, "_max_resource": 12}),
    (["study.pruner.name=hyperband", "train.epochs=4", "k_fold.enabled=false"],
     optuna.pruners.HyperbandPruner, {"_max_resource": 4}),
    (["study.pruner.name=successive_halving", "study.pruner.min_resource=2",
      "study.pruner.reduction_factor=4"],
     optuna.pruners.SuccessiveHalvingPruner, {"_min_resource": 2, "_reduction_factor": 4}),
    (["study.pruner.name=none"], optuna.pruners.NopPruner, {}),
], ids=["median", "median-without-k-fold", "hyperband-k-fold", "hyperband-one-split",
        "successive_halving", "none"])
def test_each_pruner_name_gives_its_pruner_with_the_configured_settings(
        overrides: list[str], cls: type, settings: dict[str, int]) -> None:
    pruner = make_pruner(load(SMOKE, overrides).config)
    assert type(pruner) is cls
    # Optuna keeps the constructor's arguments under these names; none of them is a default.
    assert {name: getattr(pruner, name) for name in settings} == settings
