"""Epoch-level pruning on running estimates of the objective: the estimate itself, the
median rule on the current fold's steps, the fold-level test of ``study.pruner.folds``,
the kinds of steps a study keeps across resumes, Hyperband's resource with folds, and the
config's rules, on real Optuna studies. (Through the trial loop: tests/e2e/test_epoch_pruning.py.)"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from hposweep.config.loading import load
from hposweep.errors import ConfigError, UserError
from hposweep.results import REPORT_STEPS_ATTR
from hposweep.study.pruners import FoldMedianPruner
from hposweep.study.samplers import (
    make_fold_test,
    make_pruner,
    raw_steps_notice,
    settle_report_steps,
)
from hposweep.sweep.trial import running_estimate

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"


def add_pruned_after_epoch_0(study: optuna.Study, values: tuple[float, ...]) -> None:
    for value in values:
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED,
                                                  intermediate_values={0: value}))


def running(values: dict[int, float]) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING,
                                     intermediate_values=values)


def test_the_fold_test_compares_fold_scores_with_the_best_trials() -> None:
    cfg = load(SMOKE, ["k_fold.n_splits=5", "study.pruner={name: median, folds: wilcoxon}"]).config
    test = make_fold_test(cfg)
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.9, user_attrs={"fold_values": [0.9] * 5}))
    worse = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING,
                                      user_attrs={"fold_values": [0.8, 0.85]})
    assert test.prune(study, worse)
    one_fold = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING,
                                         user_attrs={"fold_values": [0.5]})
    assert not test.prune(study, one_fold), "never before n_startup_steps (2) folds"
    assert make_fold_test(load(SMOKE, ["study.pruner.name=median"]).config) is None


def test_a_running_estimate_predicts_the_current_fold_from_the_finished_folds_curves() -> None:
    curves = {0: {0: 0.5, 1: 0.8}, 1: {0: 0.6, 1: 0.9}}
    # fold 2 at epoch 0 scores 0.4; folds 0 and 1 gained 0.3 from their epoch 0
    assert running_estimate([0.8, 0.9], curves, 0, 0.4) == pytest.approx((0.8 + 0.9 + 0.7) / 3)
    assert running_estimate([], {}, 0, 0.4) == 0.4, "fold 0: the epoch's score"
    assert running_estimate([0.8], {}, 1, 0.6) == pytest.approx(0.7), \
        "no curve known (a fold recorded without): the epoch's score"


def test_the_median_rule_reads_the_current_folds_steps_only() -> None:
    """A trial's estimate at fold 1's start (0.55) is below its fold-0 value (0.9): Optuna's
    median rule would compare its best over all steps (0.9) and never prune it."""
    pruner = FoldMedianPruner(2, n_startup_trials=1)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.add_trial(optuna.trial.create_trial(value=0.8, intermediate_values={
        0: 0.5, 1: 0.8, 2: 0.7, 3: 0.8}))
    trial = running({0: 0.6, 1: 0.9, 2: 0.55})
    assert pruner.prune(study, trial)
    assert not optuna.pruners.MedianPruner(n_startup_trials=1).prune(study, trial)


def test_in_fold_0_a_slow_trial_is_pruned_only_below_the_25th_percentile_of_every_trial_there() -> None:
    """Crossing curves: the completed trials are fast ones (0.8 after epoch 0); slower ones
    were pruned. A slow good trial (0.55) is below the completed trials' median but not in
    the bottom quarter of every trial that reached the step (0.45): it goes on. A bad one
    (0.2) still stops at its first epoch, and from fold 1 on the median rule applies."""
    pruner = FoldMedianPruner(2, 3, n_startup_trials=1)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for _ in range(2):
        study.add_trial(optuna.trial.create_trial(value=0.85, intermediate_values={
            0: 0.8, 1: 0.85, 2: 0.8, 3: 0.85}))
    add_pruned_after_epoch_0(study, (0.4, 0.45, 0.5))
    assert not pruner.prune(study, running({0: 0.55}))
    assert optuna.pruners.MedianPruner(n_startup_trials=1).prune(study, running({0: 0.55})), \
        "the completed trials' median would prune it"
    assert not pruner.prune(study, running({0: 0.47})), "above the 25th percentile (0.45)"
    assert pruner.prune(study, running({0: 0.2}))
    assert pruner.prune(study, running({0: 0.55, 1: 0.85, 2: 0.6})), "fold 1: the median rule"
    assert not pruner.prune(study, running({0: 0.55, 1: 0.85, 2: 0.82}))
    without_k_fold = FoldMedianPruner(2, 1, n_startup_trials=1)
    assert without_k_fold.prune(study, running({0: 0.55})), "no folds: the median rule"


def test_in_fold_0_running_trials_count_and_the_trial_itself_does_not() -> None:
    """Through the trial's own ``should_prune``: completed trials at 0.40 and 0.80 after
    epoch 0 put the 25th percentile at 0.50 (at 0.425 if the trial counted itself); a
    running trial at 0.30 lowers it to 0.35."""
    study = optuna.create_study(direction="maximize",
                                pruner=FoldMedianPruner(2, 3, n_startup_trials=1))
    for first in (0.40, 0.80):
        study.add_trial(optuna.trial.create_trial(value=first, intermediate_values={
            0: first, 1: first}))
    alone = study.ask()
    alone.report(0.45, 0)
    assert alone.should_prune()
    study.tell(alone, state=optuna.trial.TrialState.FAIL)  # no longer reported at the step
    other = study.ask()
    other.report(0.30, 0)
    beside = study.ask()
    beside.report(0.38, 0)
    assert not beside.should_prune()


def test_in_fold_0_the_bottom_quarter_is_the_worst_quarter_when_minimizing() -> None:
    pruner = FoldMedianPruner(2, 3, n_startup_trials=1)
    study = optuna.create_study(direction="minimize", pruner=pruner)
    study.add_trial(optuna.trial.create_trial(value=0.2, intermediate_values={0: 0.2, 1: 0.2}))
    add_pruned_after_epoch_0(study, (0.6, 0.55, 0.5))
    assert not pruner.prune(study, running({0: 0.45}))
    assert pruner.prune(study, running({0: 0.9}))


def test_in_fold_0_pruning_starts_once_n_startup_trials_others_reached_the_step() -> None:
    """Fold 0's start-up counts the trials it compares with, those that reached the step,
    completed or not: a bad trial stops at its first epoch before the first trials have run
    every fold."""
    pruner = FoldMedianPruner(2, 3, n_startup_trials=3)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    add_pruned_after_epoch_0(study, (0.4, 0.45))
    bad = running({0: 0.1})
    assert not pruner.prune(study, bad), "2 other trials at the step, of 3"
    study.add_trial(running({0: 0.5, 1: 0.6}))
    assert pruner.prune(study, bad), "3 at the step, none of them completed"
    assert not pruner.prune(study, running({0: 0.1, 1: 0.1})), "only 1 other trial at step 1"


def test_in_fold_0_a_searched_epochs_compares_only_with_trials_still_in_their_fold_0() -> None:
    """With ``epochs`` searched, step 3 is fold 0 of a 5-epoch trial and fold 1 of a
    3-epoch one, whose estimate there (0.85) is not an epoch's score: fold 0 compares
    with, and counts towards its start-up, only trials still in their fold 0 at the step."""
    pruner = FoldMedianPruner(3, 3, n_startup_trials=1)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for value in (0.85, 0.9):  # 3 epochs: step 3 is their fold 1's first epoch
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.PRUNED, params={"epochs": 3},
            distributions={"epochs": optuna.distributions.IntDistribution(2, 5)},
            intermediate_values={0: 0.3, 1: 0.6, 2: 0.8, 3: value}))
    study.add_trial(optuna.trial.create_trial(  # 5 epochs, still rising at step 3
        state=optuna.trial.TrialState.PRUNED, params={"epochs": 5},
        distributions={"epochs": optuna.distributions.IntDistribution(2, 5)},
        intermediate_values={0: 0.1, 1: 0.2, 2: 0.3, 3: 0.4}))
    slow = optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING, params={"epochs": 5},
        distributions={"epochs": optuna.distributions.IntDistribution(2, 5)},
        intermediate_values={0: 0.1, 1: 0.2, 2: 0.3, 3: 0.45})
    assert not pruner.prune(study, slow), "above the one trial in its fold 0 at step 3"


def test_hyperband_spans_every_fold_epoch() -> None:
    cfg = load(SMOKE, ["k_fold.n_splits=3", "train.epochs=3", "study.pruner.name=hyperband",
                       "study.pruner.folds=wilcoxon"]).config
    pruner = make_pruner(cfg)
    assert type(pruner) is optuna.pruners.HyperbandPruner, "TPE reads its brackets"
    assert pruner._max_resource == 9
    assert make_fold_test(cfg) is not None


@pytest.mark.parametrize(("epochs", "resource"), [
    ("{type: int, low: 2, high: 5}", 15), ("{type: categorical, choices: [4, 2]}", 12)])
def test_hyperband_spans_the_longest_trial_when_epochs_is_searched(epochs: str, resource: int) -> None:
    cfg = load(SMOKE, ["k_fold.n_splits=3", "train.epochs=3", "study.pruner.name=hyperband",
                       f"search_space.epochs={epochs}"]).config
    assert make_pruner(cfg)._max_resource == resource


def study_with(kind: str | None, values: dict[int, float]) -> optuna.Study:
    study = optuna.create_study(direction="maximize", study_name="s")
    if kind:
        study.set_user_attr(REPORT_STEPS_ATTR, kind)
    study.add_trial(optuna.trial.create_trial(value=0.5, intermediate_values=values))
    return study


@pytest.mark.parametrize(("kind", "pruner", "message"), [
    ("fold", "median", "study 's' holds fold scores at step = fold index and "
                       "study.pruner.name=median would report running estimates of the "
                       "objective: the pruner would compare incomparable values. Resume it "
                       "with wilcoxon or none, or use another study.name or --fresh"),
    ("estimate", "wilcoxon", "holds running estimates of the objective and "
                             "study.pruner.name=wilcoxon would report fold scores at step = "
                             "fold index: the pruner would compare incomparable values. Resume "
                             "it with an epoch-level pruner (median, hyperband, "
                             "successive_halving) or none"),
    ("epoch", "wilcoxon", "holds each fold's own epoch scores at step fold × epochs + epoch "
                          "and study.pruner.name=wilcoxon would report fold scores"),
    (None, "wilcoxon", "holds each fold's own epoch scores"),
])
def test_a_study_never_mixes_epoch_and_fold_steps(kind: str | None, pruner: str,
                                                  message: str) -> None:
    cfg = load(SMOKE, ["k_fold.n_splits=5", f"study.pruner.name={pruner}"]).config
    with pytest.raises(UserError) as info:
        settle_report_steps(cfg, study_with(kind, {0: 0.5}))
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("kind", ["epoch", None])
@pytest.mark.parametrize("pruner", ["median", "hyperband", "successive_halving", "none"])
def test_a_study_made_before_running_estimates_keeps_reporting_raw_epoch_scores(
        kind: str | None, pruner: str) -> None:
    """Its attr ``epoch``, or none with intermediate values (made before it was recorded):
    it resumes with its pruner, on raw scores, under Optuna's own median rule; only an
    epoch-level pruner hears that running estimates need a new study."""
    cfg = load(SMOKE, ["k_fold.n_splits=5", f"study.pruner.name={pruner}"]).config
    study = study_with(kind, {0: 0.5})
    assert settle_report_steps(cfg, study) == "epoch"
    assert study.user_attrs[REPORT_STEPS_ATTR] == "epoch"
    if pruner == "median":
        assert type(make_pruner(cfg, "epoch")) is optuna.pruners.MedianPruner
        assert type(make_pruner(cfg, "estimate")) is FoldMedianPruner
    notice = raw_steps_notice(cfg, "s", "epoch")
    if pruner == "none":
        assert notice is None, "nothing prunes: nothing to say"
    else:
        assert notice is not None and "\n" not in notice
        assert notice.startswith(f"study 's' was made before running estimates: it goes on "
                                 f"reporting each fold's own epoch scores to "
                                 f"study.pruner.name={pruner}, so its pruning stays fold-local "
                                 "as before")
        assert notice.endswith("; running estimates (epoch-level pruning past fold 0) need a "
                               "new study: --fresh or another study.name")
    assert raw_steps_notice(cfg, "s", "estimate") is None


def test_new_studies_report_running_estimates() -> None:
    none = load(SMOKE, ["study.pruner.name=none"]).config
    assert settle_report_steps(none, study_with(None, {})) == "estimate"
    combined = load(SMOKE, ["k_fold.n_splits=5", "study.pruner={name: median, folds: wilcoxon}"])
    assert settle_report_steps(combined.config, study_with(None, {})) == "estimate"
    assert settle_report_steps(combined.config, study_with("estimate", {0: 0.5})) == "estimate"


@pytest.mark.parametrize(("overrides", "expected"), [
    (["study.pruner={name: none, folds: wilcoxon}"],
     "study.pruner.folds: adds a fold-level test to an epoch-level pruner (median, hyperband, "
     "successive_halving), not to none: for fold-level pruning alone use name: wilcoxon"),
    (["study.pruner={name: wilcoxon, folds: wilcoxon}", "k_fold.n_splits=5"], "not to wilcoxon"),
    (["study.pruner={name: median, folds: median}"], "study.pruner.folds: must be wilcoxon or null"),
    (["study.pruner={name: median, folds: wilcoxon}", "k_fold.enabled=false"],
     "study.pruner.folds: wilcoxon prunes between folds: it needs k_fold.enabled=true"),
    (["study.pruner={name: median, folds: wilcoxon}", "k_fold.n_splits=2"],
     "never prune: use k_fold.n_splits of at least 3"),
])
def test_bad_fold_pruning_settings_are_one_clear_line(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(SMOKE, overrides)
    assert expected in str(info.value) and "\n" not in str(info.value)
