"""Helpers for tests: run the CLI in-process, read MLflow and the study back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from hposweep.cli.app import app


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)


def hposweep(*args: str | Path) -> CliResult:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


def mlflow_client(output_dir: Path | str = "outputs") -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{Path(output_dir).resolve() / 'mlflow.db'}")


def runs_by_kind(client: Any, experiment: str) -> dict[str, list[Any]]:
    """The experiment's runs split into parents, trial runs and fold runs."""
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    kinds: dict[str, list[Any]] = {"parent": [], "trial": [], "fold": []}
    for run in runs:
        tags = run.data.tags
        kind = ("parent" if tags.get("hposweep.runType") == "sweep"
                else "fold" if "fold_idx" in tags else "trial")
        kinds[kind].append(run)
    return kinds


def load_study(output_dir: Path | str, study_name: str) -> Any:
    import optuna

    db = Path(output_dir).resolve() / "hpo" / study_name / "study.db"
    return optuna.load_study(study_name=study_name, storage=f"sqlite:///{db}")


def checkpoint_dirs(output_dir: Path | str, backbone: str) -> list[str]:
    root = Path(output_dir) / "hpo" / backbone
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


FAKE_CONFIG = """\
study:
  name: "fake_{backbone}"
  objective_metric: score
  max_trials: 6
  sampler: {name: random, seed: 0}
  pruner: {name: none}
search_space:
  x: {type: float, low: 0.0, high: 1.0}
backbones: [fake]
data:
  synthetic: {sentences: 20, seed: 0}
train:
  trainer: "fake_trainers:quadratic"
  epochs: 1
k_fold: {enabled: true, n_splits: 2}
checkpoint: {save_only_best: true}
mlflow: {experiment: fake}
"""


def fake_config(directory: Path, text: str = FAKE_CONFIG) -> Path:
    """A sweep config that uses an instant trainer from ``fake_trainers``."""
    path = directory / "fake.yaml"
    path.write_text(text)
    return path


def process_env(**extra: str) -> dict[str, str]:
    """The environment of an `hposweep` subprocess in a test: the test trainers importable,
    output unbuffered, and nothing inherited that steers it (tracking URI, kill points,
    timing switches) unless given in ``extra``."""
    steering = ("MLFLOW_TRACKING_URI", "HPOSWEEP_KILL_AT", "HPOSWEEP_OOM_ABOVE",
                "HPOSWEEP_TEST_HOLD", "HPOSWEEP_TEST_GATE", "HPOSWEEP_TEST_DOOR")
    env = {k: v for k, v in os.environ.items() if k not in steering}
    tests = Path(__file__).resolve().parent
    # The checkout under test first: a git worktree's hposweep, not the one installed editable.
    env.update(PYTHONPATH=os.pathsep.join([str(tests.parent), str(tests)]), PYTHONUNBUFFERED="1", **extra)
    return env


def dead_owner() -> dict[str, Any]:
    """A trial owner identity of this host whose process has ended."""
    from hposweep.study.recovery import owner_identity

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = {**owner_identity(), "pid": child.pid}
    child.wait()
    return owner


def opened(study: Any, storage: Any, resumed: bool = False) -> Any:
    """An :class:`hposweep.study.OpenStudy` for a study a test made with Optuna itself."""
    from hposweep.study.open import OpenStudy

    return OpenStudy(study, storage, storage.get_study_id_from_name(study.study_name), resumed)


def checkpoint_metadata(number: int, fold: int | None = None, value: float | None = None) -> Any:
    """A checkpoint's ``hposweep.json`` for a test that drives the checkpoint manager itself."""
    from hposweep.checkpoints.metadata import CheckpointMetadata

    return CheckpointMetadata(trial_number=number, params={}, metrics={}, fold=fold,
                              objective_value=value, backbone="test", study_name="test",
                              objective_metric="f1", device="cpu", created_at="now")


def device_of(trial: Any) -> dict[str, str]:
    """The device a trial recorded (``device``; on CUDA ``device_name`` and
    ``device_index``, the GPU's among the machine's); {} when not recorded."""
    from hposweep.results import TRIAL_ATTR

    record = trial.user_attrs.get(TRIAL_ATTR, {})
    return {k: record[k] for k in ("device", "device_name", "device_index") if k in record}
