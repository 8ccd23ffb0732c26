"""Sampler and pruner names map to the Optuna objects they promise, with their settings."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from hposweep.config import load
from hposweep.study import make_pruner, make_sampler

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"


@pytest.mark.parametrize(("name", "cls"), [
    ("tpe", optuna.samplers.TPESampler), ("random", optuna.samplers.RandomSampler),
    ("cmaes", optuna.samplers.CmaEsSampler), ("gp", optuna.samplers.GPSampler),
    ("nsga2", optuna.samplers.NSGAIISampler), ("grid", optuna.samplers.GridSampler),
])
def test_each_sampler_name_gives_its_sampler(name: str, cls: type) -> None:
    overrides = [f"study.sampler.name={name}"]
    if name == "grid":
        overrides += ["search_space.dropout.step=0.1", "search_space.weight_decay.step=0.05",
                      "search_space.learning_rate.log=false", "search_space.learning_rate.step=0.001"]
    assert type(make_sampler(load(SMOKE, overrides).config)) is cls


def test_each_trial_number_has_its_own_reproducible_seed_stream() -> None:
    cfg = load(SMOKE, ["study.sampler.name=random"]).config

    def draws(sampler: optuna.samplers.BaseSampler) -> list[float]:
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        return [t.params["x"] for t in study.trials]

    assert draws(make_sampler(cfg, 4)) == draws(make_sampler(cfg, 4))
    assert draws(make_sampler(cfg, 5)) != draws(make_sampler(cfg, 4))


@pytest.mark.parametrize(("name", "cls"), [
    ("median", optuna.pruners.MedianPruner), ("hyperband", optuna.pruners.HyperbandPruner),
    ("successive_halving", optuna.pruners.SuccessiveHalvingPruner),
    ("none", optuna.pruners.NopPruner),
])
def test_each_pruner_name_gives_its_pruner(name: str, cls: type) -> None:
    assert type(make_pruner(load(SMOKE, [f"study.pruner.name={name}"]).config)) is cls


def test_median_pruner_settings_and_hyperband_budget() -> None:
    median = make_pruner(load(SMOKE, ["study.pruner.n_warmup_steps=3",
                                      "study.pruner.n_startup_trials=7"]).config)
    assert (median._n_warmup_steps, median._n_startup_trials) == (3, 7)
    hyperband = make_pruner(load(SMOKE, ["study.pruner.name=hyperband"]).config)
    # the resource is one step per epoch per fold: smoke has 3 epochs x 2 folds
    assert hyperband._max_resource == 6
