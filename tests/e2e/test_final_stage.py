"""The final stage (``final.refit``) of a real sweep of the tiny model, with a test file:
its test metrics re-computed from the saved model, what it trained on, the reports,
``refit --force``, and a kill -9 inside it. One sweep for the module; the tests after
the first ones change it, in file order (``--dist loadfile`` keeps a module together)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SMOKE
from tests.helpers import hposweep, load_study, mlflow_client, process_env

BIN = Path(sys.executable).parent
N_TRAIN = 60
# 2 trials x 2 folds x 2 epochs; the final model trains 2 epochs and saves its state after
# the first (train.resume_every_epochs: 1), where the kill test stops it.
SWEEP = ["study.max_trials=2", "k_fold.n_splits=2", "train.epochs=2",
         f"data.synthetic.sentences={N_TRAIN}", "study.pruner.name=none", "final.refit=true",
         "final.epochs=2", "data.test=test.conll"]
ROOT = Path("outputs/hpo/tiny-bert")


def write_test_file(path: Path) -> None:
    """Generated sentences of another seed: many of their invented names are in no
    training sentence (which the tokenizer's vocabulary shows)."""
    from hposweep.data.readers import synthetic_ner

    path.write_text("".join("".join(f"{t}\t{g}\n" for t, g in zip(e.tokens, e.tags, strict=True))
                            + "\n" for e in synthetic_ner(30, seed=99)))


def run(workdir: Path, *args: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = process_env(**({"HPOSWEEP_KILL_AT": kill_at} if kill_at else {}))
    return subprocess.run([str(BIN / "hposweep"), *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory, mlflow_store_template: Path) -> dict:
    workdir = tmp_path_factory.mktemp("final")
    (workdir / "outputs").mkdir()
    shutil.copy(mlflow_store_template, workdir / "outputs" / "mlflow.db")
    write_test_file(workdir / "test.conll")
    proc = run(workdir, "run", str(SMOKE), *SWEEP, "--json")
    assert proc.returncode == 0, proc.stderr
    (final_dir,) = (workdir / ROOT).glob("final_*")
    return {"workdir": workdir, "result": json.loads(proc.stdout)["backbones"][0],
            "final_dir": final_dir,
            "meta": json.loads((final_dir / "checkpoint" / "hposweep.json").read_text())}


@pytest.fixture
def here(swept: dict, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(swept["workdir"])
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return swept["workdir"]


def final_runs(workdir: Path) -> list:
    client = mlflow_client(workdir / "outputs")
    experiment = client.get_experiment_by_name("hposweep-smoke")
    return client.search_runs([experiment.experiment_id],
                              filter_string="tags.`hposweep.runType` = 'final'",
                              order_by=["attributes.start_time ASC"])


def recomputed_test_metrics(checkpoint: Path, test_file: Path) -> dict[str, float]:
    """The test file's metrics of the saved model, computed here from the two files."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from hposweep.data.readers import read_examples
    from hposweep.training.builtin import _encode_tokens, evaluate

    model = AutoModelForTokenClassification.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    rows = _encode_tokens(tokenizer, read_examples(test_file, "token-classification"),
                          {label: i for i, label in enumerate(labels)}, 32)
    return evaluate(model, rows, labels, tokenizer.pad_token_id, True, 8, "cpu")


def test_the_final_models_test_metrics_are_those_of_the_saved_model_on_the_test_file(
        swept: dict) -> None:
    workdir, meta = swept["workdir"], swept["meta"]
    recomputed = recomputed_test_metrics(swept["final_dir"] / "checkpoint",
                                         workdir / "test.conll")
    assert meta["refit"] is True and meta["test_examples"] == 30
    assert meta["test_metrics"] == pytest.approx(recomputed, abs=1e-6)
    (run_,) = final_runs(workdir)
    assert run_.info.status == "FINISHED"
    parent = swept["result"]["mlflow_parent_run_id"]
    assert run_.data.tags["mlflow.parentRunId"] == parent
    logged = run_.data.metrics
    assert {k: logged[f"test_{k}"] for k in recomputed} == pytest.approx(recomputed, abs=1e-6)
    study = load_study(workdir / "outputs", "smoke_tiny-bert")
    assert logged["cv_macro-f1-span"] == pytest.approx(study.best_value)
    assert run_.data.params["refit_from_trial"] == str(study.best_trial.number)
    assert run_.data.params["train_examples"] == str(N_TRAIN)
    assert run_.data.params["epochs"] == "2"
    client = mlflow_client(workdir / "outputs")
    logged_files = {Path(a.path).name for a in client.list_artifacts(parent, "final_model")}
    assert {"hposweep.json", "model.safetensors", "config.json"} <= logged_files
    # best_trial_checkpoint/ is still the best trial's fold model, as before
    assert {a.path for a in client.list_artifacts(parent)} >= {"best_trial_checkpoint",
                                                               "final_model"}
    assert swept["result"]["final"]["test_metrics"] == pytest.approx(recomputed, abs=1e-6)


def test_the_final_model_trained_on_every_training_example_and_no_test_example(
        swept: dict) -> None:
    from hposweep.data.readers import read_examples, synthetic_ner

    workdir, meta = swept["workdir"], swept["meta"]
    assert meta["train_examples"] == N_TRAIN and meta["epochs"] == 2 and meta["fold"] is None
    # The tiny model's vocabulary is built from the data it trains on: every training word,
    # and no word found only in the test file.
    vocab = json.loads((swept["final_dir"] / "checkpoint" / "tokenizer.json").read_text()
                       )["model"]["vocab"]
    train_words = {t for e in synthetic_ner(N_TRAIN, 0) for t in e.tokens}
    test_only = {t for e in read_examples(workdir / "test.conll", "token-classification")
                 for t in e.tokens} - train_words
    assert test_only and not test_only & set(vocab)
    assert train_words <= set(vocab)


def test_best_status_and_their_json_show_the_final_model_beside_the_cv_estimate(
        here: Path, swept: dict) -> None:
    test = swept["meta"]["test_metrics"]["macro-f1-span"]
    for command in ("best", "status"):
        (shown,) = hposweep(command, SMOKE, *SWEEP, "--json").json()
        assert shown["final"]["test_metrics"]["macro-f1-span"] == pytest.approx(test)
        assert shown["final"]["cv"]["macro-f1-span"] == pytest.approx(shown["best_value"])
        text = hposweep(command, SMOKE, *SWEEP).stdout
        assert f"test macro-f1-span = {test:.4f}" in text and "final checkpoint:" in text


def test_export_exports_the_final_model_and_from_best_the_fold_model(
        here: Path, swept: dict) -> None:
    assert hposweep("export", SMOKE, *SWEEP, "--to", here / "prod").exit_code == 0
    exported = json.loads((here / "prod" / "hposweep.json").read_text())
    assert exported == swept["meta"]
    card = (here / "prod" / "README.md").read_text()
    assert f"all {N_TRAIN} training examples" in card and "| test | CV estimate |" in card
    assert hposweep("export", SMOKE, *SWEEP, "--from", "best", "--to", here / "fold").exit_code == 0
    assert json.loads((here / "fold" / "hposweep.json").read_text())["refit"] is False
    aside = here / "final-aside"  # the final model gone from disk: MLflow's final_model/
    swept["final_dir"].rename(aside)
    try:
        fetched = hposweep("export", SMOKE, *SWEEP, "--to", here / "fetched")
    finally:
        aside.rename(swept["final_dir"])
    assert fetched.exit_code == 0, fetched.stderr
    assert json.loads((here / "fetched" / "hposweep.json").read_text()) == swept["meta"]


def test_refit_force_with_other_epochs_replaces_the_final_model_atomically(
        here: Path, swept: dict) -> None:
    checkpoint = swept["final_dir"] / "checkpoint"
    killed = run(here, "refit", str(SMOKE), *SWEEP, "final.epochs=1", "--force",
                 kill_at="final:sealed")
    assert killed.returncode == -9
    # killed with the new model complete but not in place: the old one is there, whole
    assert json.loads((checkpoint / "hposweep.json").read_text()) == swept["meta"]
    done = run(here, "refit", str(SMOKE), *SWEEP, "final.epochs=1", "--force")
    assert done.returncode == 0, done.stderr
    meta = json.loads((checkpoint / "hposweep.json").read_text())
    assert meta["epochs"] == 1 and meta["trial_number"] == swept["meta"]["trial_number"]
    assert meta["test_metrics"] == pytest.approx(recomputed_test_metrics(
        checkpoint, here / "test.conll"), abs=1e-6)
    assert not list((here / ROOT).glob(".tmp-*")) and not (swept["final_dir"] / "resume").exists()
    runs = final_runs(here)  # the killed refit's run was continued by the next refit
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    assert runs[-1].data.params["epochs"] == "1"
    # without --force, a final model of the best trial is done: nothing is trained
    again = hposweep("refit", SMOKE, *SWEEP, "final.epochs=1", "--json")
    assert again.exit_code == 0 and again.json()["tiny-bert"]["trained"] is False
    assert len(final_runs(here)) == len(runs)


def test_a_kill_inside_the_final_stage_is_continued_by_the_next_run(
        here: Path, swept: dict) -> None:
    shutil.rmtree(swept["final_dir"])  # as if the sweep had just ended
    before = {r.info.run_id for r in final_runs(here)}
    killed = run(here, "run", str(SMOKE), *SWEEP, kill_at="final:epoch0")
    assert killed.returncode == -9
    assert (swept["final_dir"] / "resume" / "state").is_dir()  # epoch 0's state
    assert not (swept["final_dir"] / "checkpoint").exists()
    resumed = run(here, "run", str(SMOKE), *SWEEP)
    assert resumed.returncode == 0, resumed.stderr
    meta = json.loads((swept["final_dir"] / "checkpoint" / "hposweep.json").read_text())
    # the same model as the uninterrupted final stage's (same trial, epochs, data)
    assert meta["test_metrics"] == pytest.approx(swept["meta"]["test_metrics"], abs=1e-6)
    (new,) = [r for r in final_runs(here) if r.info.run_id not in before]
    assert new.info.status == "FINISHED"  # the killed stage's run, continued
    history = mlflow_client(here / "outputs").get_metric_history(new.info.run_id, "train_loss")
    assert sorted(m.step for m in history) == [0, 1]  # epoch 0 was not trained again
    assert not (swept["final_dir"] / "resume").exists() and not list((here / ROOT).glob(".tmp-*"))
