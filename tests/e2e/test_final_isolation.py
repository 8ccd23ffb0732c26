"""The test set is the final stage's alone: no trial, fold, pruner or best decision reads
the test file (every open of it is recorded), adding one to a finished study resumes it,
and with ``--workers 2`` the final stage runs once. Instant trainers (``fake_trainers``)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import traceback
from pathlib import Path

import fake_trainers
import pytest

from tests.helpers import FAKE_CONFIG, fake_config, hposweep, load_study, mlflow_client, process_env

BIN = Path(sys.executable).parent
N_TRAIN = 20  # FAKE_CONFIG's generated sentences
CONFIG = (FAKE_CONFIG.replace('"fake_trainers:quadratic"', '"fake_trainers:no_test_data"')
          .replace("pruner: {name: none}", "pruner: {name: median, n_startup_trials: 1}"))


def write_test_file(path: Path, sentences: int = 5) -> None:
    path.write_text("".join(f"{fake_trainers.TEST_WORD}\tO\nin\tO\nBerlin\tB-LOC\n\n"
                            for _ in range(sentences)))


def final_runs(workdir: Path) -> list:
    client = mlflow_client(workdir / "outputs")
    experiment = client.get_experiment_by_name("fake")
    return client.search_runs([experiment.experiment_id],
                              filter_string="tags.`hposweep.runType` = 'final'")


def test_no_trial_reads_the_test_file_and_adding_one_resumes_the_study(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = fake_config(workdir, CONFIG)
    first = hposweep("run", config, "study.max_trials=3")
    assert first.exit_code == 0
    # k-fold without final.refit: the summary says what the checkpoint is, and what refits it
    shown = " ".join(re.sub(r"[│╭╮╰╯─]", " ", first.stdout).split())  # the panel unwrapped
    assert ("the checkpoint is one fold's model (trained on 1/2 of the data); to refit it on "
            f"all of it: hposweep refit {config} study.max_trials=3") in shown
    test_file = (workdir / "test.conll").resolve()
    write_test_file(test_file)
    opened_by: list[str] = []
    real_open = io.open

    def recording_open(file, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if isinstance(file, (str, Path)) and Path(file).resolve() == test_file:
            opened_by.append("".join(traceback.format_stack()))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", recording_open)
    monkeypatch.setattr("builtins.open", recording_open)
    fake_trainers.FINAL_CALLS.clear()
    # The study resumes with a test set (not part of its identity) and 3 more trials, each
    # of which (and its folds, the pruner, the best decision) runs with the test file set.
    result = hposweep("run", config, "study.max_trials=6", "data.test=test.conll",
                      "final.refit=true")
    assert result.exit_code == 0, result.stderr
    study = load_study(workdir / "outputs", "fake_fake")
    assert len(study.trials) == 6 and all(t.state.name == "COMPLETE" for t in study.trials)
    # Read once, by the final stage, after every trial had finished.
    assert len(opened_by) == 1 and "in _refit" in opened_by[0]
    assert "TrialRun" not in opened_by[0] and "_run_trial" not in opened_by[0]
    assert fake_trainers.FINAL_CALLS == [{"train": N_TRAIN, "test": 5, "fold": None,
                                          "validation": 5, "epochs": 1}]
    final = study.user_attrs["hposweep.final"]
    assert final["trial"] == study.best_trial.number and final["test_examples"] == 5
    assert final["test_metrics"]["n_train"] == N_TRAIN
    assert len(final["test_sha256"]) == 64


def test_workers_ending_together_run_the_final_stage_once(workdir: Path, tmp_path: Path) -> None:
    config = fake_config(workdir, CONFIG)
    write_test_file(workdir / "test.conll")
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = process_env(HPOSWEEP_BARRIER_AT="finish", HPOSWEEP_BARRIER_DIR=str(barrier),
                      HPOSWEEP_BARRIER_PARTIES="2")
    proc = subprocess.run([str(BIN / "hposweep"), "run", str(config), "--workers", "2",
                           "data.test=test.conll", "final.refit=true"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(list(barrier.iterdir())) == 2  # both workers reached the end together
    # Trained once: one final MLflow run (each training starts one), the study's record
    # and the one sealed final checkpoint are of it, and no second one was staged.
    (run_,) = final_runs(workdir)
    assert run_.info.status == "FINISHED"
    study = load_study(workdir / "outputs", "fake_fake")
    final = study.user_attrs["hposweep.final"]
    assert final["mlflow_run_id"] == run_.info.run_id
    root = workdir / "outputs" / "hpo" / "fake"
    (final_dir,) = root.glob("final_*")
    assert workdir / final["checkpoint"] == final_dir / "checkpoint"
    meta = json.loads((final_dir / "checkpoint" / "hposweep.json").read_text())
    assert meta["refit"] is True and meta["trial_number"] == final["trial"]
    assert (final_dir / "checkpoint" / "weights.json").is_file()
    assert not list(root.glob(".tmp-*"))


def test_a_failing_final_stage_is_a_warning_and_exit_1_and_the_study_is_intact(
        workdir: Path) -> None:
    config = fake_config(workdir, CONFIG.replace("no_test_data", "fails_in_final_stage"))
    result = hposweep("run", config, "final.refit=true")
    assert result.exit_code == 1
    assert ("warning: fake: the final stage failed (RuntimeError: no final model today); the "
            "study is intact") in " ".join(result.stderr.split())
    study = load_study(workdir / "outputs", "fake_fake")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 6
    root = workdir / "outputs" / "hpo" / "fake"
    assert (root / "best.json").is_file() and not list(root.glob("final_*/checkpoint"))
    assert not list(root.glob(".tmp-*"))
    assert "hposweep.final" not in study.user_attrs
    (run_,) = final_runs(workdir)
    assert run_.info.status == "FAILED"
