"""``mlflow.register_model``: the sweep's model as a version in MLflow's Model Registry, on a
real ``mlflow server`` whose store is a PostgreSQL database. One sweep for the module."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hposweep.checkpoints.layout import METADATA_FILE
from hposweep.config.loading import load
from tests.conftest import FAST, POSTGRES, SMOKE, postgres_admin, reach
from tests.e2e.test_processes import BIN, MlflowServer
from tests.helpers import load_study, process_env

NER_LABELS = {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` on a PostgreSQL database of its own (dropped afterwards)."""
    database = f"hposweep_registry_{uuid.uuid4().hex[:8]}"
    reach(POSTGRES, lambda: postgres_admin(f"CREATE DATABASE {database}"))
    server = MlflowServer(tmp_path_factory.mktemp("registry-server"),
                          backend=f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}")
    try:
        server.start()
        yield server.url
    finally:
        if server.proc is not None:
            server.stop()
        postgres_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


@dataclass
class Sweep:
    workdir: Path
    server: str
    model: str  # the registered model's name
    args: list[str]

    def run(self, *more: str, command: str = "run") -> subprocess.CompletedProcess[str]:
        return subprocess.run([BIN / "hposweep", command, SMOKE, *self.args, *more],
                              cwd=self.workdir,
                              env=process_env(MLFLOW_TRACKING_URI=self.server),
                              capture_output=True, text=True, timeout=300)

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.server)

    def versions(self) -> list[Any]:
        found = self.client().search_model_versions(f"name = '{self.model}'")
        return sorted(found, key=lambda v: int(v.version))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str) -> Sweep:
    """A finished sweep of the tiny NER model with ``mlflow.register_model`` set."""
    workdir = tmp_path_factory.mktemp("registry-sweep")
    model = f"ner-{uuid.uuid4().hex[:6]}"
    done = Sweep(workdir, mlflow_server, model,
                 [*FAST, "study.max_trials=1", "k_fold.enabled=false", f"mlflow.register_model={model}",
                  "mlflow.experiment=registry"])
    proc = done.run()
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr.lower(), proc.stderr
    assert f"registered in MLflow as version 1 of '{model}'" in proc.stdout
    return done


def shown(sweep: Sweep, *more: str) -> list[tuple[str, Any, str, Any]]:
    """What ``best`` and ``status`` say of the registered version: per command, its
    ``registered:`` line and ``--json``'s ``registered``."""
    said = []
    for command in ("best", "status"):
        text, as_json = sweep.run(*more, command=command), sweep.run(*more, "--json",
                                                                     command=command)
        assert text.returncode == as_json.returncode == 0, text.stderr + as_json.stderr
        lines = [line.strip(" │") for line in text.stdout.splitlines() if "registered:" in line]
        (status,) = json.loads(as_json.stdout)
        said.append((command, lines, command, status["registered"]))
    return said


def registered(model: str, version: str, source: str) -> list[tuple[str, Any, str, Any]]:
    words = {"final": "the final model", "best": "the best trial's checkpoint"}[source]
    return [(command, [f"registered: models:/{model}/{version} ({words})"], command,
             {"name": model, "version": version, "source": source})
            for command in ("best", "status")]


def best_checkpoint(sweep: Sweep) -> Path:
    (checkpoint,) = (sweep.workdir / "outputs" / "hpo" / "tiny-bert").glob("trial_*/checkpoint")
    return checkpoint


def test_the_best_checkpoint_is_one_version_tagged_with_its_study_and_trial(sweep: Sweep) -> None:
    (version,) = sweep.versions()
    study = load_study(sweep.workdir / "outputs", "smoke_tiny-bert")
    metadata = json.loads((best_checkpoint(sweep) / METADATA_FILE).read_text())
    assert version.tags["hposweep.study_name"] == "smoke_tiny-bert"
    assert version.tags["hposweep.backbone"] == "tiny-bert"
    assert version.tags["hposweep.trial_number"] == str(study.best_trial.number)
    assert version.tags["hposweep.source"] == "best"
    assert float(version.tags["cv_macro-f1-span"]) == pytest.approx(study.best_value)
    assert metadata["trial_number"] == study.best_trial.number
    assert not any(key.startswith("test_") for key in version.tags), "no test set scored it"
    client = sweep.client()
    parent = client.get_run(version.run_id)
    assert parent.data.tags["hposweep.runType"] == "sweep", "logged under the sweep's parent run"
    assert [o.model_id for o in parent.outputs.model_outputs] == [version.source.split("/")[-1]]
    assert parent.info.status == "FINISHED"


def test_best_and_status_name_the_registered_version_of_the_best_checkpoint(sweep: Sweep) -> None:
    assert shown(sweep) == registered(sweep.model, "1", "best")


def test_the_registered_token_classifier_predicts_a_label_per_word_through_pyfunc(
        sweep: Sweep, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", sweep.server)  # undone after the test
    model = mlflow.pyfunc.load_model(f"models:/{sweep.model}/1")
    predicted = model.predict(["John Smith lives in Paris", "nothing"])
    assert [len(labels.split(",")) for labels in predicted] == [5, 1], predicted
    assert {label for labels in predicted for label in labels.split(",")} <= NER_LABELS


def test_a_token_classifier_that_finds_no_entity_still_predicts(
        sweep: Sweep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow 3.17's token-classification pyfunc raises IndexError on a sentence without an
    entity unless every label is kept: a model made to say "O" for every token predicts
    "O" for every word."""
    import mlflow
    import torch
    from safetensors.torch import load_file, save_file

    from hposweep.tracking.registry import register_checkpoint

    silent = tmp_path / "checkpoint"
    shutil.copytree(best_checkpoint(sweep), silent)
    weights = load_file(silent / "model.safetensors")
    bias = torch.zeros_like(weights["classifier.bias"])
    bias[0] = 100.0  # label 0 is "O"
    save_file({**weights, "classifier.bias": bias}, silent / "model.safetensors",
              metadata={"format": "pt"})
    name = f"silent-{uuid.uuid4().hex[:6]}"
    cfg = load(SMOKE, [f"mlflow.register_model={name}"]).config
    registered = register_checkpoint(sweep.client(), sweep.server, cfg, silent,
                                     study_name="smoke_tiny-bert",
                                     parent_run_id=sweep.versions()[0].run_id)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sweep.server)  # undone after the test
    model = mlflow.pyfunc.load_model(f"models:/{name}/{registered.version}")
    assert list(model.predict(["John Smith lives in Paris"])) == ["O,O,O,O,O"]


def test_a_rerun_that_changes_nothing_adds_no_version_and_logs_no_model(sweep: Sweep) -> None:
    client = sweep.client()
    experiment = client.get_experiment_by_name("registry").experiment_id
    models_before = client.search_logged_models([experiment])
    proc = sweep.run()
    assert proc.returncode == 0, proc.stderr
    assert "registered in MLflow" not in proc.stdout + proc.stderr, proc.stdout
    assert f"registered: models:/{sweep.model}/1 (the best trial's checkpoint)" in proc.stdout
    assert [v.version for v in sweep.versions()] == ["1"]
    assert len(client.search_logged_models([experiment])) == len(models_before)
    assert shown(sweep) == registered(sweep.model, "1", "best"), "still version 1"


def test_the_final_model_is_the_next_version_with_its_test_metrics_once_per_refit(
        sweep: Sweep) -> None:
    """The finished study's final stage (``final.refit`` added, with a test set) ships the
    final model: a new version tagged final with the test metrics of its ``hposweep.json``;
    ``refit --force`` adds one more."""
    from tests.e2e.test_final_stage import write_test_file

    write_test_file(sweep.workdir / "test.conll")
    final = ["final.refit=true", "data.test=test.conll"]
    proc = sweep.run(*final)
    assert proc.returncode == 0, proc.stderr
    (checkpoint,) = (sweep.workdir / "outputs" / "hpo" / "tiny-bert").glob("final_*/checkpoint")
    assert f"{checkpoint.relative_to(sweep.workdir)} registered in MLflow as version 2" in proc.stdout
    metadata = json.loads((checkpoint / METADATA_FILE).read_text())
    newest = sweep.versions()[-1]
    assert (newest.version, newest.tags["hposweep.source"]) == ("2", "final")
    assert {k.removeprefix("test_"): float(v) for k, v in newest.tags.items()
            if k.startswith("test_")} == metadata["test_metrics"] != {}
    assert shown(sweep, *final) == registered(sweep.model, "2", "final")
    refit = sweep.run(*final, "--force", "--json", command="refit")
    assert refit.returncode == 0, refit.stderr
    assert [v.version for v in sweep.versions()] == ["1", "2", "3"]
    assert json.loads(refit.stdout)["tiny-bert"]["registered"] == {
        "name": sweep.model, "version": "3", "source": "final"}, "refit --json says it too"
    assert sweep.versions()[-1].tags["hposweep.source"] == "final"
    assert shown(sweep, *final) == registered(sweep.model, "3", "final")


def test_a_final_model_that_could_not_be_registered_shows_no_version_until_it_is(
        sweep: Sweep) -> None:
    """``refit --force`` with MLflow unreachable replaces the final model without registering
    it: ``best`` and ``status`` name no version (version 3 holds the old final model); the
    next run with MLflow back registers it and shows the new version."""
    from tests.e2e.test_sweep_behaviour import free_port

    final = ["final.refit=true", "data.test=test.conll"]
    down = sweep.run(*final, f"mlflow.tracking_uri=http://127.0.0.1:{free_port()}", "--force",
                     "--json", command="refit")
    assert down.returncode == 0, down.stderr
    assert "MLflow failed" in down.stderr
    assert json.loads(down.stdout)["tiny-bert"]["registered"] is None
    assert shown(sweep, *final) == [("best", [], "best", None), ("status", [], "status", None)]
    back = sweep.run(*final, "--json")
    assert back.returncode == 0, back.stderr
    assert [v.version for v in sweep.versions()] == ["1", "2", "3", "4"]
    assert json.loads(back.stdout)["backbones"][0]["registered"] == {
        "name": sweep.model, "version": "4", "source": "final"}, "run --json says it too"
    assert shown(sweep, *final) == registered(sweep.model, "4", "final")


def test_a_sequence_classifier_is_registered_as_a_text_classification_pipeline(
        sweep: Sweep, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from hposweep.checkpoints.metadata import CheckpointMetadata
    from hposweep.data.readers import build_folds, load_data
    from hposweep.tracking.registry import register_checkpoint
    from hposweep.training.builtin import train
    from tests.unit.test_builtin_trainer import context

    data = tmp_path / "reviews.jsonl"
    data.write_text("".join(json.dumps({"text": text, "label": label}) + "\n"
                            for text, label in [("great fun", "pos"), ("awful and dull", "neg")] * 8))
    model = f"reviews-{uuid.uuid4().hex[:6]}"
    cfg = load(SMOKE, ["data.synthetic=null", f"data.train={data}", "train.epochs=1",
                       "data.task=sequence-classification", "study.objective_metric=accuracy",
                       f"mlflow.register_model={model}"]).config
    checkpoint = tmp_path / "checkpoint"
    train({"learning_rate": 1e-2, "batch_size": 8}, build_folds(cfg, load_data(cfg))[0],
          context(cfg, checkpoint_dir=checkpoint))
    CheckpointMetadata(0, {}, {}, None, 0.5, "tiny", "reviews", "accuracy", "cpu",
                       "2026-01-01T00:00:00").write(checkpoint)
    parent = sweep.versions()[0].run_id
    registered = register_checkpoint(sweep.client(), sweep.server, cfg, checkpoint,
                                     study_name="reviews", parent_run_id=parent)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sweep.server)  # undone after the test
    predicted = mlflow.pyfunc.load_model(f"models:/{model}/{registered.version}").predict(
        ["great fun", "dull"])
    assert set(predicted["label"]) <= {"neg", "pos"} and len(predicted) == 2, predicted
