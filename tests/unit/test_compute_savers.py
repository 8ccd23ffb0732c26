"""The compute savers' config keys (pruner wilcoxon, enqueue, warm_start, budget, stop_when),
the Wilcoxon pruner they build, and the budget and no-improvement rules on real Optuna
trials."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import optuna
import pytest

from hposweep.config.loading import load
from hposweep.config.schema import ParamSpec
from hposweep.errors import ConfigError
from hposweep.study.budget import min_delta, spent, usage
from hposweep.study.samplers import make_pruner
from hposweep.study.warm_start import _misfit

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
WILCOXON = ["study.pruner.name=wilcoxon", "k_fold.n_splits=5"]


def error_of(*overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(SMOKE, list(overrides))
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize(("overrides", "expected"), [
    (["study.pruner.name=wilcoxon", "k_fold.enabled=false"],
     "study.pruner.name: wilcoxon prunes between folds: it needs k_fold.enabled=true"),
    (["study.pruner.name=wilcoxon", "k_fold.n_splits=2"],
     "never prune: use k_fold.n_splits of at least 3"),
    ([*WILCOXON, "study.pruner.n_startup_steps=5"], "never prune: use k_fold.n_splits of at least 6"),
    ([*WILCOXON, "study.pruner.p_threshold=0"], "study.pruner.p_threshold: must be a number within (0, 1]"),
    (["study.pruner.name=wilcoxon", "k_fold.n_splits=3", "study.pruner.p_threshold=0.25"],
     "study.pruner.p_threshold: wilcoxon compares at most 2 folds before the last, and the smallest "
     "p-value 2 pairs can give is 0.25: with p_threshold=0.25 it would never prune"),
    (["study.enqueue=[{learning_rate: [1, 2]}]"], "study.enqueue[0].learning_rate: must be a number"),
    (["study.warm_start={form: x}"], "study.warm_start.form: unknown key (did you mean 'from'?)"),
    (["study.warm_start={top_k: 2}"], "study.warm_start.from: name the study to start from"),
    (["study.warm_start={from: ../x}"], "is neither a storage URL nor a study name"),
    (["study.warm_start={from: 'sqlite:///#s'}"], "study.warm_start.from: names no file"),
    (["study.warm_start={from: x, top_k: 0}"], "study.warm_start.top_k: must be a whole number, at least 1"),
    (["study.budget.trial_hours=0"], "study.budget.trial_hours: must be a positive number of hours"),
    (["study.budget.wall_hours=-1"], "study.budget.wall_hours: must be a positive number of hours"),
    (["study.stop_when.no_improvement=0"], "study.stop_when.no_improvement: must be a whole number"),
    (["study.stop_when.min_delta=-0.1"], "study.stop_when.min_delta: must be 0, a positive number"),
])
def test_bad_compute_saver_settings_are_one_clear_line(overrides: list[str], expected: str) -> None:
    assert expected in error_of(*overrides)


def test_wilcoxon_gives_optunas_pruner_with_the_configured_settings() -> None:
    cfg = load(SMOKE, [*WILCOXON, "study.pruner.p_threshold=0.3", "study.pruner.n_startup_steps=3"])
    pruner = make_pruner(cfg.config)
    assert type(pruner) is optuna.pruners.WilcoxonPruner
    assert (pruner._p_threshold, pruner._n_startup_steps) == (0.3, 3)


@pytest.mark.parametrize(("spec", "value", "problem"), [
    (ParamSpec("float", 0.0, 1.0), 0.5, None),
    (ParamSpec("float", 0.0, 1.0), 1.5, "outside [0, 1]"),
    (ParamSpec("float", 0.0, 0.2, step=0.05), 0.15, None),
    (ParamSpec("float", 0.0, 0.2, step=0.05), 0.12, "not on the step 0.05 from 0"),
    (ParamSpec("int", 1, 8), 4.0, None),
    (ParamSpec("int", 1, 8), 2.5, "not a whole number for an int parameter"),
    (ParamSpec("float", 0.0, 1.0), "a", "not a number for a float parameter"),
    (ParamSpec("categorical", choices=[16, 32]), 16.0, None),
    (ParamSpec("categorical", choices=[16, 32]), 8, "not one of [16, 32]"),
    (ParamSpec("categorical", choices=[1, 2]), True, "not one of [1, 2]"),
])
def test_a_parameter_fits_a_search_space_entry_only_if_it_could_be_sampled(
        spec: ParamSpec, value: object, problem: str | None) -> None:
    assert _misfit(spec, value) == problem


T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def trial(number: int, state: str, start_s: float | None, end_s: float | None,
          value: float | None = None, folds: list[float] | None = None) -> optuna.trial.FrozenTrial:
    def at(seconds: float | None) -> dt.datetime | None:
        return None if seconds is None else T0 + dt.timedelta(seconds=seconds)

    return optuna.trial.FrozenTrial(
        number=number, state=optuna.trial.TrialState[state], value=value,
        datetime_start=at(start_s), datetime_complete=at(end_s), params={}, distributions={},
        user_attrs={"fold_values": folds} if folds else {}, system_attrs={},
        intermediate_values={}, trial_id=number)


def test_usage_sums_every_trials_wall_time_and_counts_running_ones_until_now() -> None:
    trials = [trial(0, "COMPLETE", 0, 1800, 0.5), trial(1, "FAIL", 600, 1200),
              trial(2, "RUNNING", 3000, None), trial(3, "WAITING", None, None)]
    used = usage(trials, now=T0 + dt.timedelta(seconds=3600))
    assert used.trial_hours == pytest.approx((1800 + 600 + 600) / 3600)
    assert used.wall_hours == pytest.approx(1.0), "since the first trial started"


def test_a_spent_budget_names_itself() -> None:
    cfg = load(SMOKE, ["study.budget.trial_hours=0.5", "study.budget.wall_hours=2"]).config
    trials = [trial(0, "COMPLETE", 0, 1800, 0.5)]
    assert spent(cfg, trials, now=T0 + dt.timedelta(seconds=1800)).reason == "trial_hours"
    cfg.study.budget.trial_hours = None
    assert spent(cfg, trials, now=T0 + dt.timedelta(seconds=1800)) is None
    assert spent(cfg, trials, now=T0 + dt.timedelta(hours=2)).reason == "wall_hours"


def finished_in_order(values: list[float], folds: list[float] | None = None) -> list:
    """COMPLETE trials that finished one after another, listed out of order."""
    trials = [trial(n, "COMPLETE", n, n + 1, v, folds) for n, v in enumerate(values)]
    return trials[::-1]


def test_no_improvement_counts_trials_in_the_order_they_finished() -> None:
    cfg = load(SMOKE, ["study.stop_when.no_improvement=2"]).config
    assert spent(cfg, finished_in_order([0.5, 0.6, 0.6, 0.55])).message.startswith(
        "study.stop_when.no_improvement=2: the last 2 finished trials did not beat trial 1")
    assert spent(cfg, finished_in_order([0.5, 0.6, 0.6, 0.7])) is None
    cfg.study.objective_goal = "minimize"
    assert spent(cfg, finished_in_order([0.5, 0.4, 0.3, 0.2])) is None
    pruned = [trial(4, "PRUNED", 4, 5, 0.9), trial(5, "PRUNED", 5, 6, 0.1)]
    assert spent(cfg, finished_in_order([0.5, 0.4]) + pruned).reason == "no_improvement", \
        "a pruned trial never improves"


def test_an_infeasible_trial_never_improves() -> None:
    cfg = load(SMOKE, ["study.stop_when.no_improvement=2", "study.constraints=[loss <= 1]"]).config
    trials = finished_in_order([0.5, 0.9, 0.95])
    for t in trials[:2]:  # trials 2 and 1: the best scores, over their constraint
        t.set_constraint("loss<=1", 0.5)
    assert spent(cfg, trials).message.endswith("did not beat trial 0 (0.5) by more than 0")


def test_the_default_min_delta_is_the_best_trials_standard_error_over_folds() -> None:
    cfg = load(SMOKE, ["study.stop_when.no_improvement=2"]).config
    folds = [0.5, 0.6, 0.7, 0.6]  # sample stdev 0.0816, standard error 0.0408
    assert min_delta(cfg, finished_in_order([0.6], folds)[0]) == pytest.approx(0.0408, abs=1e-4)
    # +0.03 and +0.04 on the best: within one standard error, so no improvement.
    assert spent(cfg, finished_in_order([0.6, 0.63, 0.64], folds)).reason == "no_improvement"
    cfg.study.stop_when.min_delta = 0.0
    assert spent(cfg, finished_in_order([0.6, 0.63, 0.64], folds)) is None
