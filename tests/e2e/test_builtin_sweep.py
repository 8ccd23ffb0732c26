"""End to end through the CLI with the built-in trainer: one real k-fold sweep, then
assertions on disk and in MLflow for every seed success criterion."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FAST, SMOKE
from tests.helpers import checkpoint_dirs, hposweep, load_study, mlflow_client, runs_by_kind
from tests.unit.test_builtin_trainer import fill, pages, tmpfs


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory, mlflow_store_template: Path) -> dict[str, Any]:
    """One k-fold smoke sweep (3 trials x 2 folds), run once for this module's tests."""
    workdir = tmp_path_factory.mktemp("kfold")
    (workdir / "outputs").mkdir()
    shutil.copy(mlflow_store_template, workdir / "outputs" / "mlflow.db")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        result = hposweep("run", SMOKE, *FAST, "--json")
        assert result.exit_code == 0, result.stderr
        study = load_study("outputs", "smoke_tiny-bert")
        client = mlflow_client("outputs")
        runs = runs_by_kind(client, "hposweep-smoke")
    return {"dir": workdir, "result": result.json(), "study": study, "client": client,
            "runs": runs}


def test_only_the_best_trials_last_fold_checkpoint_is_on_disk(sweep: dict[str, Any]) -> None:
    study = sweep["study"]
    run_id = study.user_attrs["hposweep.run_id"]
    root = sweep["dir"] / "outputs" / "hpo" / "tiny-bert"
    assert checkpoint_dirs(root.parent.parent, "tiny-bert") == [
        f"trial_{study.best_trial.number}_{run_id}_fold1"]
    assert not list(root.glob(".tmp-*"))
    best = json.loads((root / "best.json").read_text())["best"]
    assert [e["trial_number"] for e in best] == [study.best_trial.number]
    assert best[0]["value"] == pytest.approx(study.best_value)


def test_checkpoint_loads_with_transformers_and_carries_metadata(sweep: dict[str, Any]) -> None:
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    summary = sweep["result"]["backbones"][0]
    checkpoint = sweep["dir"] / summary["checkpoint"]
    model = AutoModelForTokenClassification.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    assert model.config.num_labels == 7 and tokenizer("Anna visited Paris")["input_ids"]
    assert not list(checkpoint.glob("*.bin")) and not list(checkpoint.glob("*.pkl"))
    meta = json.loads((checkpoint / "hposweep.json").read_text())
    assert meta["trial_number"] == summary["best_trial"] and meta["fold"] == 1
    assert meta["params"] == summary["best_params"]
    assert set(meta["versions"]) >= {"hposweep", "torch", "transformers"}
    assert {"device", "created_at", "git_commit", "metrics"} <= set(meta)


def test_json_summary(sweep: dict[str, Any]) -> None:
    result = sweep["result"]
    assert result["exit_code"] == 0
    backbone = result["backbones"][0]
    assert backbone["n_complete"] + backbone["n_pruned"] == 3
    assert backbone["best_value"] == pytest.approx(sweep["study"].best_value)
    assert backbone["mlflow_parent_run_id"] == sweep["runs"]["parent"][0].info.run_id


def test_parent_run_has_the_seed_params_metrics_tags(sweep: dict[str, Any]) -> None:
    (parent,) = sweep["runs"]["parent"]
    study = sweep["study"]
    data = parent.data
    assert parent.info.run_name == "smoke_tiny-bert" and parent.info.status == "FINISHED"
    for key in ("backbone", "max_trials", "study_name", "objective_metric", "objective_goal",
                "checkpoint_enabled", "checkpoint_path", "checkpoint_storage_type",
                "resumed_from_checkpoint", "search_space.learning_rate"):
        assert key in data.params, key
    assert data.metrics["n_trials"] == 3
    assert data.metrics["best_macro-f1-span"] == pytest.approx(study.best_value)
    assert data.metrics["best_learning_rate"] == pytest.approx(study.best_params["learning_rate"])
    assert data.tags["hposweep.runType"] == "sweep"
    assert data.tags["best_trial_number"] == str(study.best_trial.number)
    best_run = sweep["client"].get_run(data.tags["best_trial_run_id"])
    assert best_run.data.tags["trial_number"] == str(study.best_trial.number)


def test_best_trial_checkpoint_artifact_equals_the_local_checkpoint(sweep: dict[str, Any]) -> None:
    (parent,) = sweep["runs"]["parent"]
    client = sweep["client"]
    names = sorted(a.path for a in client.list_artifacts(parent.info.run_id, "best_trial_checkpoint"))
    local = sweep["dir"] / sweep["result"]["backbones"][0]["checkpoint"]
    assert names == sorted(f"best_trial_checkpoint/{p.name}" for p in local.iterdir())
    downloaded = Path(client.download_artifacts(parent.info.run_id, "best_trial_checkpoint",
                                                str(sweep["dir"] / "dl")))
    assert (downloaded / "model.safetensors").read_bytes() == (local / "model.safetensors").read_bytes()


def test_every_trial_is_tracked_with_params_and_metrics(sweep: dict[str, Any]) -> None:
    """Regression: selective checkpointing changes nothing about trial tracking."""
    study, runs = sweep["study"], sweep["runs"]
    (parent,) = runs["parent"]
    trial_runs = {int(r.data.tags["trial_number"]): r for r in runs["trial"]}
    assert sorted(trial_runs) == [t.number for t in study.trials]
    for trial in study.trials:
        run = trial_runs[trial.number]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["state"] == trial.state.name
        assert run.data.params["trial_number"] == str(trial.number)
        for name, value in trial.params.items():
            assert float(run.data.params[name]) == pytest.approx(value)
        if trial.state.name == "COMPLETE":
            assert run.data.metrics["macro-f1-span"] == pytest.approx(trial.value)
            assert {"loss", "macro-f1", "fold0/macro-f1-span", "fold1/macro-f1-span"} <= set(
                run.data.metrics)
            assert any(k.startswith("f1-span-") for k in run.data.metrics)


def test_fold_runs_are_nested_under_their_trial(sweep: dict[str, Any]) -> None:
    runs = sweep["runs"]
    trial_ids = {r.info.run_id: r.data.tags["trial_number"] for r in runs["trial"]}
    complete = [t for t in sweep["study"].trials if t.state.name == "COMPLETE"]
    assert len(runs["fold"]) >= 2 * len(complete)
    for fold in runs["fold"]:
        assert trial_ids[fold.data.tags["mlflow.parentRunId"]] == fold.data.tags["trial_number"]
        assert fold.data.params["fold_idx"] == fold.data.tags["fold_idx"]


def test_single_training_without_kfold(workdir: Path) -> None:
    result = hposweep("run", SMOKE, *FAST, "k_fold.enabled=false", "--json")
    assert result.exit_code == 0, result.stderr
    study = load_study("outputs", "smoke_tiny-bert")
    run_id = study.user_attrs["hposweep.run_id"]
    assert checkpoint_dirs("outputs", "tiny-bert") == [f"trial_{study.best_trial.number}_{run_id}"]
    runs = runs_by_kind(mlflow_client(), "hposweep-smoke")
    assert runs["fold"] == [] and len(runs["trial"]) == 3


def test_several_backbones_get_a_study_parent_and_checkpoint_each(workdir: Path) -> None:
    result = hposweep("run", SMOKE, *FAST, "backbones=[tiny-a,tiny-b]", "study.max_trials=2", "--json")
    assert result.exit_code == 0, result.stderr
    summaries = result.json()["backbones"]
    assert [s["study_name"] for s in summaries] == ["smoke_tiny-a", "smoke_tiny-b"]
    for name in ("tiny-a", "tiny-b"):
        dirs = checkpoint_dirs("outputs", name)
        assert len(dirs) == 1 and dirs[0].endswith("_fold1")
    parents = runs_by_kind(mlflow_client(), "hposweep-smoke")["parent"]
    assert sorted(p.info.run_name for p in parents) == ["smoke_tiny-a", "smoke_tiny-b"]
    client = mlflow_client()
    for parent in parents:
        assert client.list_artifacts(parent.info.run_id, "best_trial_checkpoint")


def test_disk_full_during_checkpoint_write_does_not_fail_the_sweep(workdir: Path) -> None:
    """A real 16 KiB tmpfs where checkpoints go: every save fails with ENOSPC."""
    target = workdir / "outputs" / "hpo" / "tiny-bert"
    target.mkdir(parents=True)
    if os.system(f"mount -t tmpfs -o size=16k tmpfs {target} 2>/dev/null") != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        result = hposweep("run", SMOKE, *FAST, "--json")
        assert result.exit_code == 0, result.stderr
        summary = result.json()["backbones"][0]
        assert summary["n_complete"] >= 1 and summary["checkpoint"] is None
        assert "No space left on device" in result.stderr
        assert "best_trial_checkpoint/ is not logged" in result.stderr
        assert [p.name for p in target.iterdir() if p.name.startswith(("trial_", ".tmp-"))] == []
    finally:
        os.system(f"umount {target}")


def test_disk_full_while_saving_the_resume_state_is_a_warning_and_the_trial_counts(
        workdir: Path) -> None:
    """A real 16 KiB tmpfs under the backbone dir: each fold's save after epoch 1 fails."""
    target = workdir / "outputs" / "hpo" / "tiny-bert"
    with tmpfs(target, 16 * 1024):
        result = hposweep("run", SMOKE, *FAST, "train.epochs=2", "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json()["backbones"][0]
    assert summary["n_complete"] == 3 and summary["n_failed"] == 0
    unsaved = [line for line in result.stderr.splitlines() if "resume state not saved" in line]
    assert len(unsaved) == 3, "one warning per trial, not one per save"
    assert "Traceback" not in result.stderr


def test_mlflow_store_on_a_full_disk_is_one_warning_and_the_sweep_finishes(
        workdir: Path, mlflow_store_template: Path) -> None:
    store = workdir / "mlstore"
    with tmpfs(store, pages(mlflow_store_template.stat().st_size) + 64 * 1024):
        shutil.copy(mlflow_store_template, store / "mlflow.db")
        fill(store)
        result = hposweep("run", SMOKE, *FAST, f"mlflow.tracking_uri=sqlite:///{store}/mlflow.db",
                          "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["backbones"][0]["n_complete"] == 3
    (warning,) = [line for line in result.stderr.splitlines() if "MLflow" in line]
    assert warning.startswith("warning: MLflow failed") and "disk is full" in warning
    assert "Traceback" not in result.stderr and "sqlalchemy" not in result.stderr.lower()


def test_each_trial_records_the_device_it_trained_on(sweep: dict[str, Any]) -> None:
    from tests.helpers import device_of

    trials = sweep["study"].trials
    assert [device_of(t) for t in trials] == [{"device": "cpu"}] * len(trials)
    assert all(r.data.tags["device"] == "cpu" for r in sweep["runs"]["trial"])
    assert all("gpu_peak_mb" not in r.data.metrics for r in sweep["runs"]["trial"]), "CUDA only"
