"""Epoch-level pruning on running estimates of the objective (any epoch of any fold can
prune), epoch- and fold-level pruning together (``study.pruner.folds``), the kinds of
steps a study keeps across resumes, Hyperband's resource with folds, and the config's
rules, on real Optuna studies driven through the real trial loop (``hposweep run`` in
process) with the instant trainer ``fake_trainers:plateau_by_x`` (a fold's score rises to
``1 - x`` over its epochs)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from hposweep.config.loading import load
from hposweep.errors import ConfigError, UserError
from hposweep.results import REPORT_STEPS_ATTR
from hposweep.study.pruners import FoldMedianPruner
from hposweep.study.samplers import make_fold_test, make_pruner, settle_report_steps
from hposweep.sweep.trial import running_estimate
from tests.helpers import fake_config, hposweep, load_study

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
EPOCHS = 3


def sweep(workdir: Path, xs: list[float], *overrides: str) -> list[optuna.trial.FrozenTrial]:
    """``hposweep run`` of one trial per ``x`` in ``xs``, in that order; the study's trials."""
    config = fake_config(workdir)
    result = hposweep("run", config, "train.trainer=fake_trainers:plateau_by_x",
                      f"train.epochs={EPOCHS}", "mlflow.enabled=false",
                      f"study.max_trials={len(xs)}",
                      "study.enqueue=[" + ", ".join(f"{{x: {x}}}" for x in xs) + "]", *overrides)
    assert result.exit_code == 0, result.stderr
    return load_study(workdir / "outputs", "fake_fake").trials


def test_median_prunes_in_a_later_fold_a_trial_that_led_on_fold_0(workdir: Path) -> None:
    """Trial 2 is the best on fold 0 (0.95) and bad after (0.2). With raw epoch scores its
    best value so far (0.95) beat every later step's median: it ran to the end."""
    trials = sweep(workdir, [0.2, 0.1, 0.8], "k_fold.n_splits=3", "study.pruner.name=median",
                   "study.pruner.n_startup_trials=2")
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    pruned = trials[2]
    # At fold 1's epoch 0 (step 3) fold 1 scores 0.2/3 and is predicted to gain what fold
    # 0 gained from its epoch 0 (0.95 - 0.95/3): (0.95 + 0.2/3 + 0.95 * 2/3) / 2 = 0.825,
    # against the median of the completed trials' estimates there (0.8 and 0.9).
    assert pruned.user_attrs["prune_reason"] == (
        "pruned: score=0.0667 (fold 2/3 epoch 1; running estimate of score 0.8250)")
    assert pruned.intermediate_values == pytest.approx(
        {0: 0.95 / 3, 1: 0.95 * 2 / 3, 2: 0.95, 3: 0.825})
    assert pruned.value == pytest.approx(0.825), "the last estimate"
    complete = trials[1]  # its folds rise alike: past fold 0 every step predicts 0.9
    assert complete.intermediate_values == pytest.approx(
        {k * EPOCHS + e: 0.9 * (e + 1) / EPOCHS if k == 0 else 0.9
         for k in range(3) for e in range(EPOCHS)})
    assert complete.value == pytest.approx(0.9)
    assert load_study(workdir / "outputs", "fake_fake").user_attrs[REPORT_STEPS_ATTR] == "estimate"


def test_median_and_wilcoxon_stop_a_bad_trial_at_its_first_epoch_and_a_mediocre_one_between_folds(
        workdir: Path) -> None:
    """Three completed trials, each better than the last (plateaus 0.8, 0.85, 0.9), then a
    bad one (0.4: below the median from fold 0's first epoch) and a mediocre one (0.88:
    above the median at every step, but worse than the best on each of its first 2 folds:
    Wilcoxon p = 0.25)."""
    trials = sweep(workdir, [0.2, 0.15, 0.1, 0.6, 0.12], "k_fold.n_splits=5",
                   "study.pruner={name: median, folds: wilcoxon, n_startup_trials: 3}")
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3 + ["PRUNED"] * 2
    bad, mediocre = trials[3], trials[4]
    assert sorted(bad.intermediate_values) == [0]
    assert bad.user_attrs["prune_reason"].endswith("(fold 1/5 epoch 1; running estimate of score 0.1333)")
    assert mediocre.user_attrs["prune_reason"] == (
        "pruned after fold 2/5: worse than the best trial fold by fold (Wilcoxon, p < 0.3)")
    assert mediocre.user_attrs["fold_values"] == pytest.approx([0.88, 0.88])
    assert sorted(mediocre.intermediate_values) == list(range(2 * EPOCHS)), \
        "no epoch of fold 3 trained"
    assert mediocre.value == pytest.approx(0.88), "the mean over the folds it ran"
    status = hposweep("status", workdir / "fake.yaml", "--json").json()[0]
    assert status["intermediate_values"].startswith("running estimates of the objective (the "
                                                    "mean of the finished folds' scores")
    rows = {row["number"]: row for row in status["trials"]}
    assert rows[3]["value"] == pytest.approx(0.4 / EPOCHS), "its last running estimate"
    assert rows[4]["reason"].startswith("pruned after fold 2/5")
    assert "intermediate values: running estimates" in hposweep("status", workdir / "fake.yaml").stdout


def test_a_trial_ahead_of_the_best_is_never_pruned_between_folds(workdir: Path) -> None:
    trials = sweep(workdir, [0.3, 0.25, 0.2, 0.1], "k_fold.n_splits=4",
                   "study.pruner={name: median, folds: wilcoxon, n_startup_trials: 3}")
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert trials[3].value == pytest.approx(0.9)


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
    running = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING,
                                        intermediate_values={0: 0.6, 1: 0.9, 2: 0.55})
    assert pruner.prune(study, running)
    assert not optuna.pruners.MedianPruner(n_startup_trials=1).prune(study, running)


def test_hyperband_spans_every_fold_epoch() -> None:
    cfg = load(SMOKE, ["k_fold.n_splits=3", "train.epochs=3", "study.pruner.name=hyperband",
                       "study.pruner.folds=wilcoxon"]).config
    pruner = make_pruner(cfg)
    assert type(pruner) is optuna.pruners.HyperbandPruner, "TPE reads its brackets"
    assert pruner._max_resource == 9
    assert make_fold_test(cfg) is not None


def test_successive_halving_prunes_on_estimates_at_a_rung_in_a_later_fold(workdir: Path) -> None:
    """Rungs at steps 1, 3, 9 (fold 0 epoch 1, fold 1 epoch 0, -): the trial that leads on
    fold 0 (``x >= 0.7``) passes rung 1 and is stopped at rung 3, in fold 1."""
    trials = sweep(workdir, [0.2, 0.1, 0.8], "k_fold.n_splits=3",
                   "study.pruner={name: successive_halving, min_resource: 1}")
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert max(trials[2].intermediate_values) == 3


def study_with(kind: str | None, values: dict[int, float]) -> optuna.Study:
    study = optuna.create_study(direction="maximize", study_name="s")
    if kind:
        study.set_user_attr(REPORT_STEPS_ATTR, kind)
    study.add_trial(optuna.trial.create_trial(value=0.5, intermediate_values=values))
    return study


@pytest.mark.parametrize(("kind", "pruner", "message"), [
    ("epoch", "median", "study 's' holds each fold's own epoch scores at step fold × epochs + "
                        "epoch and study.pruner.name=median would report running estimates of "
                        "the objective: the pruner would compare incomparable values. Resume it "
                        "with study.pruner.name=none"),
    (None, "hyperband", "holds each fold's own epoch scores"),
    ("fold", "median", "holds fold scores at step = fold index"),
    ("estimate", "wilcoxon", "holds running estimates of the objective and "
                             "study.pruner.name=wilcoxon would report fold scores"),
])
def test_a_study_never_mixes_kinds_of_steps(kind: str | None, pruner: str, message: str) -> None:
    cfg = load(SMOKE, ["k_fold.n_splits=5", f"study.pruner.name={pruner}"]).config
    with pytest.raises(UserError) as info:
        settle_report_steps(cfg, study_with(kind, {0: 0.5}))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_pruner_none_continues_a_study_of_raw_epoch_scores_and_estimates_are_the_default() -> None:
    none = load(SMOKE, ["study.pruner.name=none"]).config
    assert settle_report_steps(none, study_with(None, {0: 0.5})) == "epoch"
    assert settle_report_steps(none, study_with(None, {})) == "estimate"
    combined = load(SMOKE, ["k_fold.n_splits=5", "study.pruner={name: median, folds: wilcoxon}"])
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


def test_estimates_without_k_fold_are_the_epoch_scores(workdir: Path) -> None:
    trials = sweep(workdir, [0.1], "k_fold.enabled=false", "study.pruner.name=median")
    assert trials[0].intermediate_values == pytest.approx(
        {e: 0.9 * (e + 1) / EPOCHS for e in range(EPOCHS)})
    assert trials[0].value == pytest.approx(0.9)
