"""Search space -> real Optuna suggestions and grids."""

from __future__ import annotations

import optuna

from hposweep.config.schema import ParamSpec
from hposweep.study.space import describe, grid, suggest

SPACE = {
    "learning_rate": ParamSpec(type="float", low=1e-5, high=1e-3, log=True),
    "batch_size": ParamSpec(type="categorical", choices=[8, 16, 32]),
    "epochs": ParamSpec(type="int", low=1, high=4),
    "warmup_ratio": ParamSpec(type="float", low=0.0, high=0.2, step=0.05),
}


def test_suggestions_respect_types_and_ranges() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        params = suggest(trial, SPACE)
        assert 1e-5 <= params["learning_rate"] <= 1e-3
        assert params["batch_size"] in (8, 16, 32)
        assert isinstance(params["epochs"], int) and 1 <= params["epochs"] <= 4
        assert round(params["warmup_ratio"] / 0.05, 6).is_integer()
        study.tell(trial, 0.0)
    dist = study.trials[0].distributions
    assert dist["learning_rate"].log is True
    assert isinstance(dist["epochs"], optuna.distributions.IntDistribution)


def test_grid_enumerates_every_value_and_grid_sampler_covers_it() -> None:
    space = {"batch_size": SPACE["batch_size"], "warmup_ratio": SPACE["warmup_ratio"],
             "epochs": SPACE["epochs"]}
    values = grid(space)
    assert values == {"batch_size": [8, 16, 32], "warmup_ratio": [0.0, 0.05, 0.1, 0.15, 0.2],
                      "epochs": [1, 2, 3, 4]}
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(values, seed=0))
    study.optimize(lambda t: float(len(suggest(t, space))), n_trials=60)
    seen = {tuple(sorted(t.params.items())) for t in study.trials}
    assert len(seen) == 3 * 5 * 4


def test_describe_is_readable() -> None:
    assert describe(SPACE["learning_rate"]) == "float[1e-05, 0.001] log"
    assert describe(SPACE["batch_size"]) == "categorical[8, 16, 32]"
    assert describe(SPACE["warmup_ratio"]) == "float[0, 0.2] step 0.05"
