"""``hposweep export`` on a real finished sweep of the built-in model: from the local
checkpoint, from MLflow once the local one is gone, and ``--verify`` catching tampering."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import FAST, SMOKE
from tests.helpers import hposweep


@pytest.fixture
def finished(workdir: Path) -> dict:
    result = hposweep("run", SMOKE, *FAST, "--json")
    assert result.exit_code == 0, result.stderr
    return result.json()["backbones"][0]


def assert_loadable_export(directory: Path, best_trial: int) -> None:
    import json

    from transformers import AutoModelForTokenClassification, AutoTokenizer

    names = {p.name for p in directory.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md",
            "MANIFEST.sha256", "hposweep.json"} <= names
    assert json.loads((directory / "hposweep.json").read_text())["trial_number"] == best_trial
    AutoModelForTokenClassification.from_pretrained(directory)
    AutoTokenizer.from_pretrained(directory)
    card = (directory / "README.md").read_text()
    assert f"best trial {best_trial}" in card and "macro-f1-span per fold" in card
    assert ("- model: fold 2/2's model, trained on 50% of the training data "
            "(30 of 60 examples)") in card, "FAST: 60 sentences in 2 folds"
    assert "learning_rate" in card and "B-PER" in card and "transformers" in card
    assert hposweep("export", "--verify", directory).exit_code == 0


def test_export_from_the_local_checkpoint(workdir: Path, finished: dict) -> None:
    result = hposweep("export", SMOKE, *FAST, "--to", workdir / "prod")
    assert result.exit_code == 0, result.stderr
    assert_loadable_export(workdir / "prod", finished["best_trial"])
    assert not list(workdir.glob(".tmp-*"))


def test_export_from_mlflow_when_the_local_checkpoint_is_gone(workdir: Path, finished: dict) -> None:
    shutil.rmtree(Path(finished["checkpoint"]).parent)
    result = hposweep("export", SMOKE, *FAST, "--to", workdir / "prod")
    assert result.exit_code == 0, result.stderr
    assert_loadable_export(workdir / "prod", finished["best_trial"])


def test_verify_detects_a_tampered_a_missing_and_an_added_file(workdir: Path, finished: dict) -> None:
    assert hposweep("export", SMOKE, *FAST, "--to", workdir / "prod").exit_code == 0
    prod = workdir / "prod"
    with (prod / "model.safetensors").open("r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 0xFF]))
    (prod / "tokenizer_config.json").unlink()
    (prod / "extra.txt").write_text("x")
    result = hposweep("export", "--verify", prod)
    assert result.exit_code == 1
    assert "changed: model.safetensors" in result.stderr
    assert "missing: tokenizer_config.json" in result.stderr
    assert "not in the manifest: extra.txt" in result.stderr


def test_export_never_overwrites(workdir: Path, finished: dict) -> None:
    (workdir / "prod").mkdir()
    (workdir / "prod" / "mine.txt").write_text("keep me")
    result = hposweep("export", SMOKE, *FAST, "--to", workdir / "prod")
    assert result.exit_code == 2 and "not empty" in result.stderr
    assert (workdir / "prod" / "mine.txt").read_text() == "keep me"


def test_export_without_a_completed_trial_is_exit_1_like_best(workdir: Path) -> None:
    result = hposweep("export", SMOKE, "--to", workdir / "prod")
    assert result.exit_code == 1 and "no completed trial" in result.stderr
    assert hposweep("best", SMOKE).exit_code == 1  # one rule for every command


def test_export_from_an_unreachable_mlflow_fails_in_seconds(workdir: Path) -> None:
    """The export's MLflow client has the sweep's short HTTP retries (MLflow's defaults
    stall for minutes); a subprocess, so that no earlier test's settings leak in."""
    import socket
    import subprocess
    import sys
    import time

    from tests.helpers import fake_config, process_env

    config = fake_config(workdir)
    assert hposweep("run", config, "study.max_trials=2").exit_code == 0
    shutil.rmtree(workdir / "outputs" / "hpo" / "fake")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    result = subprocess.run(
        [str(Path(sys.executable).parent / "hposweep"), "export", str(config), "--to",
         str(workdir / "prod"), f"mlflow.tracking_uri=http://127.0.0.1:{port}"],
        cwd=workdir, env=process_env(), capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - started
    assert result.returncode == 2 and "MLflow could not provide" in result.stderr, result.stderr
    assert elapsed < 30, f"export stalled {elapsed:.0f} s on an unreachable server"
