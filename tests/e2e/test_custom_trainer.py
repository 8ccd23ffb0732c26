"""The user's own training function: the shipped example end to end, and broken targets
rejected (exit 2) before any trial starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers import checkpoint_dirs, fake_config, hposweep, load_study, mlflow_client, runs_by_kind

EXAMPLE = REPO / "examples" / "custom_trainer" / "sweep.yaml"


def test_the_plain_pytorch_example_runs_with_every_feature(
        workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO))  # examples.custom_trainer is importable from the repo
    result = hposweep("run", EXAMPLE, f"data.train={REPO}/examples/data/train.conll",
                      "study.max_trials=4", "train.epochs=5", "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json()["backbones"][0]
    study = load_study("outputs", "custom_bag-of-words")
    assert summary["best_value"] == study.best_value and 0.0 < study.best_value <= 1.0
    (kept,) = checkpoint_dirs("outputs", "bag-of-words")
    assert kept.startswith(f"trial_{study.best_trial.number}_") and kept.endswith("_fold2")
    files = sorted(p.name for p in (Path("outputs/hpo/bag-of-words") / kept / "checkpoint").iterdir())
    assert files == ["hposweep.json", "model.safetensors", "vocab.json"]
    client = mlflow_client()
    runs = runs_by_kind(client, "custom-trainer")
    (parent,) = runs["parent"]
    assert len(runs["trial"]) == 4 and len(runs["fold"]) >= 3
    assert client.list_artifacts(parent.info.run_id, "best_trial_checkpoint")
    meta = json.loads((Path("outputs/hpo/bag-of-words") / kept / "checkpoint/hposweep.json").read_text())
    assert meta["params"] == study.best_params


@pytest.mark.parametrize(("target", "message"), [
    ("no_such_module:fit", "cannot import 'no_such_module'"),
    ("fake_trainers:missing", "has no function 'missing'"),
    ("fake_trainers:not_a_function", "has no function 'not_a_function'"),
    ("fake_trainers:wrong_arity", "must accept (params, data, ctx)"),
    ("fake_trainers:declared_float", "must return a dict of metrics"),
])
def test_a_broken_trainer_is_exit_2_before_any_trial(workdir: Path, target: str, message: str) -> None:
    result = hposweep("run", fake_config(workdir), f"train.trainer={target}")
    assert result.exit_code == 2 and message in result.stderr
    assert not (workdir / "outputs" / "hpo").exists(), "no study was started"


def test_a_trainer_returning_no_dict_fails_its_trials_with_the_reason(workdir: Path) -> None:
    result = hposweep("run", fake_config(workdir), "train.trainer=fake_trainers:returns_nan",
                      "study.max_trials=1", "--json")
    assert result.exit_code == 1
    assert "score is nan" in result.json()["backbones"][0]["trials"][0]["reason"]
