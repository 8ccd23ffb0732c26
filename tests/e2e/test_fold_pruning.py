"""Fold-level pruning (``study.pruner.name: wilcoxon``) end to end through the CLI, with
instant trainers (``tests/compute_trainers.py``): what is pruned and when, what a pruned
trial leaves in the study, on disk and in MLflow, and the report steps of a retried trial
after a real SIGKILL in fold 2."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compute_trainers import FOLD_OFFSETS
from tests.helpers import (
    checkpoint_dirs,
    fake_config,
    hposweep,
    load_study,
    mlflow_client,
    process_env,
    runs_by_kind,
)

BIN = Path(sys.executable).parent
# 4 folds; with p_threshold 0.3 a trial worse than the best on its first 2 folds (p = 0.25,
# the smallest a 2-pair signed-rank test gives) is pruned there.
WILCOXON = ["train.trainer=compute_trainers:fold_scored", "k_fold.n_splits=4",
            "study.pruner.name=wilcoxon", "study.pruner.p_threshold=0.3"]


def true_score(x: float) -> float:
    """fold_scored's mean over 4 folds: what a trial would score had it run every fold."""
    return 1.0 - (x - 0.3) ** 2 + statistics.fmean(FOLD_OFFSETS[:4])


def test_wilcoxon_prunes_a_clearly_worse_trial_after_two_folds_and_keeps_nothing_of_it(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = workdir / "folds.log"
    monkeypatch.setenv("FOLD_LOG", str(log))
    # Trial 0 sets a best, trial 1 beats it fold by fold, trial 2 is clearly worse.
    result = hposweep("run", fake_config(workdir), *WILCOXON, "study.max_trials=3",
                      "study.enqueue=[{x: 0.6}, {x: 0.3}, {x: 0.9}]", "--json")
    assert result.exit_code == 0, result.stderr
    study = load_study("outputs", "fake_fake")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    best, pruned = study.trials[1], study.trials[2]
    assert study.best_trial.number == 1 and sorted(best.intermediate_values) == [0, 1, 2, 3]
    assert sorted(pruned.intermediate_values) == [0, 1], "fold scores at step = fold index"
    assert log.read_text().split("\n")[-3:-1] == ["2 0", "2 1"], "folds 2 and 3 never trained"
    folds = [1.0 - (0.9 - 0.3) ** 2 + FOLD_OFFSETS[k] for k in (0, 1)]
    assert pruned.user_attrs["fold_values"] == pytest.approx(folds)
    assert pruned.value == pytest.approx(statistics.fmean(folds)), "the mean of the folds it ran"
    assert pruned.user_attrs["prune_reason"].startswith("pruned after fold 2/4")
    # Nothing of the pruned trial on disk: only the best's last-fold checkpoint.
    assert [d for d in checkpoint_dirs("outputs", "fake") if d.startswith("trial_")] == \
        [f"trial_1_{study.user_attrs['hposweep.run_id']}_fold3"]
    # MLflow: the trial run PRUNED with the folds it ran; its two fold runs COMPLETE.
    kinds = runs_by_kind(mlflow_client(), "fake")
    run = next(r for r in kinds["trial"] if r.data.tags["trial_number"] == "2")
    assert run.data.tags["state"] == "PRUNED"
    assert run.data.metrics["score"] == pytest.approx(pruned.value)
    assert {k for k in run.data.metrics if k.startswith("fold")} == {"fold0/score", "fold1/score"}
    fold_runs = [r for r in kinds["fold"] if r.data.tags["trial_number"] == "2"]
    assert sorted(r.data.tags["fold_idx"] for r in fold_runs) == ["0", "1"]
    assert {r.data.tags["state"] for r in fold_runs} == {"COMPLETE"}
    # status and compare read the pruned trial right; the plot page is made.
    status = hposweep("status", fake_config(workdir), *WILCOXON, "--json").json()[0]
    assert [t["state"] for t in status["trials"]] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert status["trials"][2]["value"] == pytest.approx(pruned.value)
    assert status["best_trial"] == 1 and len(status["best_fold_values"]) == 4
    assert hposweep("compare", fake_config(workdir), *WILCOXON).exit_code == 0
    plot = hposweep("plot", fake_config(workdir), *WILCOXON, "--out", workdir / "plots")
    assert plot.exit_code == 0, plot.stderr
    page = (workdir / "plots" / "fake_fake.html").read_text()
    assert "<h2>intermediate values</h2>" not in page, "its steps are folds, not epochs"
    folds = page.split("<h2>fold scores</h2>")[1]
    assert '"title":{"text":"fold"}' in folds and '"name":"trial 2 (pruned)"' in folds


def test_wilcoxon_never_prunes_the_trial_that_turns_out_best(workdir: Path) -> None:
    """12 sampled trials: the best score any trial would have had over all 4 folds
    belongs to a trial that ran all 4 (fold offsets are shared, so a trial behind the best
    on every fold so far is behind it in truth)."""
    result = hposweep("run", fake_config(workdir), *WILCOXON, "study.max_trials=12",
                      "mlflow.enabled=false", "--json")
    assert result.exit_code == 0, result.stderr
    trials = load_study("outputs", "fake_fake").trials
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned, "the seeded sampler draws trials worse than the best"
    assert all(len(t.intermediate_values) < 4 for t in pruned)
    truly_best = max(trials, key=lambda t: true_score(t.params["x"]))
    assert truly_best.state.name == "COMPLETE"
    assert sorted(truly_best.intermediate_values) == [0, 1, 2, 3]


@pytest.mark.parametrize(("pruner", "folds", "retry_steps"), [
    # Fold-level: the folds the retry took from its resume state are reported again.
    ("wilcoxon", None, [0, 1, 2, 3]),
    # Epoch-level: fold k's epoch e at k * epochs + e; folds 0 and 1 were not rerun, and
    # report their running estimate at their last steps (1 and 3), as trial 0 did.
    ("median", None, [1, 3, 4, 5, 6, 7]),
    # Both: the same steps (that the fold-level test runs after each fold taken, too:
    # test_a_retry_runs_the_fold_test_on_the_folds_it_took_from_its_resume_state).
    ("median", "wilcoxon", [1, 3, 4, 5, 6, 7]),
], ids=["wilcoxon", "median", "median+wilcoxon"])
def test_a_retry_after_a_kill_in_fold_2_reports_its_folds_at_their_own_steps(
        workdir: Path, pruner: str, folds: str | None, retry_steps: list[int]) -> None:
    log = workdir / "folds.log"
    command = [str(BIN / "hposweep"), "run", str(fake_config(workdir)), *WILCOXON,
               f"study.pruner.name={pruner}", *([f"study.pruner.folds={folds}"] if folds else []),
               "study.max_trials=1", "train.epochs=2",
               "study.enqueue=[{x: 0.3}]", "mlflow.enabled=false"]
    rise = 0.1  # each fold's epoch 0 is 0.1 below its end: the retry predicts it from the
    # curves of the folds it took from its resume state (without them: 0.1 too low)
    killed = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300,
                            env=process_env(FOLD_LOG=str(log), FOLD_RISE=str(rise),
                                            HPOSWEEP_KILL_AT="trial0:fold2:epoch0"))
    assert killed.returncode == -9, killed.stderr
    resumed = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300,
                             env=process_env(FOLD_LOG=str(log), FOLD_RISE=str(rise)))
    assert resumed.returncode == 0, resumed.stderr
    first, retry = load_study("outputs", "fake_fake").trials
    assert first.state.name == "FAIL" and retry.state.name == "COMPLETE"
    assert retry.user_attrs["retried_from"] == 0
    assert log.read_text().split() == ["0", "0", "0", "1", "1", "2", "1", "3"], \
        "folds 0 and 1 trained once, by trial 0; the retry trained folds 2 and 3"
    assert sorted(retry.intermediate_values) == retry_steps
    if pruner == "wilcoxon":
        assert first.intermediate_values == pytest.approx({0: 1.0, 1: 1.0 + FOLD_OFFSETS[1]})
        assert retry.intermediate_values == pytest.approx(
            {k: 1.0 + FOLD_OFFSETS[k] for k in range(4)})
    else:  # running estimates: the mean of the finished folds with the current fold's
        # predicted end (its epoch's score + the finished folds' gain from that epoch: 0.1)
        folds = [1.0 + FOLD_OFFSETS[k] for k in range(4)]
        expected = {k * 2 + e: statistics.fmean(folds[:k + 1]) for k in range(4) for e in (0, 1)}
        expected[0] -= rise  # fold 0's epoch 0: no finished fold to predict its end from
        assert retry.intermediate_values == pytest.approx(
            {s: v for s, v in expected.items() if s in retry_steps})
        assert first.intermediate_values == pytest.approx(
            {s: v for s, v in expected.items() if s <= 4}), "trial 0 died in fold 2's epoch 0"


def test_a_retry_runs_the_fold_test_on_the_folds_it_took_from_its_resume_state(
        workdir: Path) -> None:
    """``median`` + ``folds: wilcoxon``: trial 1, clearly worse than the best (trial 0), is
    killed in fold 2 by a run whose fold test waits for 3 folds; its retry, in a run whose
    test decides after 2, is pruned after the 2 folds it took from its resume state, before
    it trains any fold (a retry that skipped the test there would train fold 2)."""
    log = workdir / "folds.log"
    command = [str(BIN / "hposweep"), "run", str(fake_config(workdir)), *WILCOXON,
               "study.pruner.name=median", "study.pruner.folds=wilcoxon",
               "study.max_trials=2", "train.epochs=2",
               "study.enqueue=[{x: 0.3}, {x: 0.9}]", "mlflow.enabled=false"]
    killed = subprocess.run([*command, "study.pruner.n_startup_steps=3"], cwd=workdir,
                            capture_output=True, text=True, timeout=300,
                            env=process_env(FOLD_LOG=str(log),
                                            HPOSWEEP_KILL_AT="trial1:fold2:epoch0"))
    assert killed.returncode == -9, killed.stderr
    trained = ["0 0", "0 1", "0 2", "0 3", "1 0", "1 1"]
    assert log.read_text().splitlines() == trained, "trial 1 reached fold 2: not pruned"
    resumed = subprocess.run(command, cwd=workdir, capture_output=True, text=True,
                             timeout=300, env=process_env(FOLD_LOG=str(log)))
    assert resumed.returncode == 0, resumed.stderr
    best, first, retry = load_study("outputs", "fake_fake").trials
    assert (best.state.name, first.state.name, retry.state.name) == ("COMPLETE", "FAIL",
                                                                     "PRUNED")
    assert retry.user_attrs["retried_from"] == 1
    assert retry.user_attrs["prune_reason"].startswith("pruned after fold 2/4"), \
        retry.user_attrs["prune_reason"]
    assert log.read_text().splitlines() == trained, "the retry trained no fold"
    assert retry.user_attrs["fold_values"] == pytest.approx(
        [1.0 - (0.9 - 0.3) ** 2 + FOLD_OFFSETS[k] for k in (0, 1)])


def test_a_study_keeps_its_kind_of_steps(workdir: Path) -> None:
    """Epoch steps and fold steps are never mixed: switching between an epoch-level pruner
    and wilcoxon is refused (exit 2, before any trial); pruner none keeps what the study has."""
    config = fake_config(workdir)
    first = hposweep("run", config, *WILCOXON, "study.max_trials=2", "mlflow.enabled=false")
    assert first.exit_code == 0, first.stderr
    refused = hposweep("run", config, *WILCOXON, "study.pruner.name=median", "study.max_trials=3",
                       "mlflow.enabled=false")
    assert refused.exit_code == 2
    assert ("holds fold scores at step = fold index and study.pruner.name=median would report "
            "running estimates of the objective") in refused.stderr
    assert len(load_study("outputs", "fake_fake").trials) == 2, "nothing ran"
    kept = hposweep("run", config, *WILCOXON, "study.pruner.name=none", "study.max_trials=3",
                    "mlflow.enabled=false")
    assert kept.exit_code == 0, kept.stderr
    assert sorted(load_study("outputs", "fake_fake").trials[2].intermediate_values) == [0, 1, 2, 3]
