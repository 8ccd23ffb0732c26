"""Epoch-level pruning on running estimates of the objective (any epoch of any fold can
prune) and epoch- and fold-level pruning together (``study.pruner.folds``) through the
trial loop (``hposweep run`` in process, real SQLite studies), with the instant trainer
``fake_trainers:plateau_by_x`` (a fold's score rises to ``1 - x`` over its epochs)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from hposweep.results import REPORT_STEPS_ATTR
from tests.helpers import CliResult, fake_config, hposweep, load_study

EPOCHS = 3


def run(workdir: Path, xs: list[float], *overrides: str) -> CliResult:
    """``hposweep run`` of one trial per ``x`` in ``xs``, in that order (those the study has
    not run yet)."""
    return hposweep("run", fake_config(workdir), "train.trainer=fake_trainers:plateau_by_x",
                    f"train.epochs={EPOCHS}", "mlflow.enabled=false",
                    f"study.max_trials={len(xs)}",
                    "study.enqueue=[" + ", ".join(f"{{x: {x}}}" for x in xs) + "]", *overrides)


def sweep(workdir: Path, xs: list[float], *overrides: str) -> list[optuna.trial.FrozenTrial]:
    """:func:`run`, which must succeed; the study's trials."""
    result = run(workdir, xs, *overrides)
    assert result.exit_code == 0, result.stderr
    return load_study(workdir / "outputs", "fake_fake").trials


def raw(plateaus: list[float]) -> dict[int, float]:
    """The raw epoch scores of ``plateau_by_x``'s folds, at step fold × epochs + epoch."""
    return {k * EPOCHS + e: p * (e + 1) / EPOCHS for k, p in enumerate(plateaus)
            for e in range(EPOCHS)}


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


def test_successive_halving_prunes_on_estimates_at_a_rung_in_a_later_fold(workdir: Path) -> None:
    """Rungs at steps 1, 3, 9 (fold 0 epoch 1, fold 1 epoch 0, -): the trial that leads on
    fold 0 (``x >= 0.7``) passes rung 1 and is stopped at rung 3, in fold 1."""
    trials = sweep(workdir, [0.2, 0.1, 0.8], "k_fold.n_splits=3",
                   "study.pruner={name: successive_halving, min_resource: 1}")
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert max(trials[2].intermediate_values) == 3


def test_estimates_without_k_fold_are_the_epoch_scores(workdir: Path) -> None:
    trials = sweep(workdir, [0.1], "k_fold.enabled=false", "study.pruner.name=median")
    assert trials[0].intermediate_values == pytest.approx(
        {e: 0.9 * (e + 1) / EPOCHS for e in range(EPOCHS)})
    assert trials[0].value == pytest.approx(0.9)


def test_a_study_made_before_running_estimates_resumes_with_its_pruner_on_raw_epoch_scores(
        workdir: Path) -> None:
    """A study as hposweep made it before running estimates (its kind of steps ``epoch``,
    two trials of raw epoch scores) resumes with ``median`` and with ``median`` plus the
    fold test: exit 0, one notice, and its new trials report raw scores at fold × epochs +
    epoch to Optuna's own median rule (which never prunes past fold 0 there)."""
    db = workdir / "outputs" / "hpo" / "fake_fake" / "study.db"
    db.parent.mkdir(parents=True)
    optuna.create_study(study_name="fake_fake", storage=f"sqlite:///{db}",
                        direction="maximize").set_user_attr(REPORT_STEPS_ATTR, "epoch")
    sweep(workdir, [0.2, 0.1], "k_fold.n_splits=3")  # pruner none: as the old code reported
    notice = ("study 'fake_fake' was made before running estimates: it goes on reporting each "
              "fold's own epoch scores to study.pruner.name=median, so its pruning stays "
              "fold-local as before (the median rule in practice in fold 0 only); running "
              "estimates (epoch-level pruning past fold 0) need a new study: --fresh or "
              "another study.name")
    # 0.12: above the median at every step, worse than the best (0.9) on its 2 first folds
    combined = run(workdir, [0.2, 0.1, 0.12], "k_fold.n_splits=3",
                   "study.pruner={name: median, folds: wilcoxon, n_startup_trials: 2}")
    assert combined.exit_code == 0, combined.stderr
    assert combined.stderr.count(notice) == 1
    # 0.8: the best on fold 0 (0.95), bad after (0.2), fold 1's first epoch 0.2/3 below
    # the median there (0.2833): a running estimate would be pruned, a raw score is not
    median = run(workdir, [0.2, 0.1, 0.12, 0.8], "k_fold.n_splits=3", "study.pruner.name=median",
                 "study.pruner.n_startup_trials=2")
    assert median.exit_code == 0, median.stderr
    assert median.stderr.count(notice) == 1
    study = load_study(workdir / "outputs", "fake_fake")
    assert study.user_attrs[REPORT_STEPS_ATTR] == "epoch"
    trials = study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    assert trials[1].intermediate_values == pytest.approx(raw([0.9] * 3))
    assert trials[2].user_attrs["prune_reason"].startswith("pruned after fold 2/3")
    assert trials[2].intermediate_values == pytest.approx(raw([0.88] * 2))
    assert trials[3].intermediate_values == pytest.approx(raw([0.95, 0.2, 0.2]))
    assert trials[3].value == pytest.approx(0.45)
