"""The commands around a sweep, on a real finished sweep: best, compare, run --dry-run."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from tests.helpers import fake_config, hposweep, load_study, mlflow_client

TWO = ["backbones=[alpha,beta]"]


@pytest.fixture
def finished(workdir: Path) -> Path:
    config = fake_config(workdir)
    result = hposweep("run", config, *TWO, "--json")
    assert result.exit_code == 0, result.stderr
    return config


def test_best_names_trial_value_params_checkpoint_and_runs(finished: Path) -> None:
    result = hposweep("best", finished, *TWO, "--json")
    assert result.exit_code == 0
    for entry in result.json():
        study = load_study("outputs", entry["study_name"])
        assert entry["best_trial"] == study.best_trial.number
        assert entry["best_value"] == study.best_value and entry["best_params"] == study.best_params
        assert Path(entry["checkpoint"], "weights.json").is_file()
        # The run ids are checked against MLflow itself, not the attrs they were read from.
        best_run = mlflow_client().get_run(entry["mlflow_best_run_id"])
        assert best_run.data.tags["trial_number"] == str(entry["best_trial"])
        assert best_run.data.tags["mlflow.parentRunId"] == entry["mlflow_parent_run_id"]
        parent = mlflow_client().get_run(entry["mlflow_parent_run_id"])
        assert parent.data.tags["best_trial_number"] == str(entry["best_trial"])
    text = hposweep("best", finished, *TWO)
    assert "best trial:" in text.stdout and "MLflow best trial run" in text.stdout


def test_best_without_any_completed_trial_exits_1(workdir: Path) -> None:
    result = hposweep("best", fake_config(workdir))
    assert result.exit_code == 1 and "no completed trial yet" in result.stdout


def test_compare_puts_backbones_side_by_side(finished: Path) -> None:
    result = hposweep("compare", finished, *TWO, "--json")
    assert result.exit_code == 0
    for entry in result.json():
        study = load_study("outputs", entry["study_name"])
        assert entry["best_fold_values"] == study.best_trial.user_attrs["fold_values"]
        assert statistics.fmean(entry["best_fold_values"]) == pytest.approx(study.best_value)
        assert entry["finished"] == 6 and entry["seconds"] > 0
    table = hposweep("compare", finished, *TWO).stdout
    assert "alpha" in table and "beta" in table and "±" in table


def test_dry_run_says_what_it_would_do_and_writes_nothing(workdir: Path) -> None:
    config = fake_config(workdir)
    before = sorted(p.name for p in (workdir / "outputs").iterdir())
    fresh = hposweep("run", config, "--dry-run")
    assert fresh.exit_code == 0 and "would create study 'fake_fake'" in fresh.stdout
    assert "max_trials: 6" in fresh.stdout
    assert sorted(p.name for p in (workdir / "outputs").iterdir()) == before
    assert hposweep("run", config, "study.max_trials=2").exit_code == 0
    again = hposweep("run", config, "--dry-run")
    assert "would resume study 'fake_fake': 2/6 finished, 4 to run" in again.stdout
    assert len(load_study("outputs", "fake_fake").trials) == 2
    bad = hposweep("run", config, "--dry-run", "k_fold.n_splits=1")
    assert bad.exit_code == 2


def test_plot_writes_one_self_contained_page_per_study(finished: Path, workdir: Path) -> None:
    result = hposweep("plot", finished, *TWO, "--out", workdir / "plots")
    assert result.exit_code == 0, result.stderr
    for study in ("fake_alpha", "fake_beta"):
        page = (workdir / "plots" / f"{study}.html").read_text()
        for title in ("optimization history", "parallel coordinate", "slice",
                      "intermediate values: running estimates of the objective"):  # k-fold
            assert f"<h2>{title}</h2>" in page
        # Fewer than 10 completed trials: no importances, and a warning says why.
        assert "<h2>param importances</h2>" not in page
        assert f"{study}: no param importances plot" in result.stderr
        assert '<script src="http' not in page, "no download: the page works offline"
        assert "plotly.js" in page and len(page) > 1_000_000, "plotly.js is embedded"
    again = hposweep("plot", finished, *TWO, "--out", workdir / "plots")
    assert again.exit_code == 2 and "--force" in again.stderr
    assert hposweep("plot", finished, *TWO, "--out", workdir / "plots", "--force").exit_code == 0


def test_log_plots_puts_the_page_on_the_parent_run(workdir: Path) -> None:
    from tests.helpers import mlflow_client, runs_by_kind

    result = hposweep("run", fake_config(workdir), "mlflow.log_plots=true", "study.max_trials=3")
    assert result.exit_code == 0, result.stderr
    client = mlflow_client()
    (parent,) = runs_by_kind(client, "fake")["parent"]
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "plots")] == [
        "plots/fake_fake.html"]
