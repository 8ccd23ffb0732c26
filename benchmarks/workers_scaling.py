"""Trials per minute with 1, 2 and 4 workers (`hposweep run --workers K`) on one study,
measured from the study's timestamps (first trial start to last trial end).
A trainer that sleeps 1 s shows orchestration scaling apart from cores (target >= 3.5x
at 4 workers); the tiny built-in model shows the compute-bound case on this machine."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from _common import BIN, REPO
from overhead import per_trial_ms

SLEEPY = """\
study: {name: "scale_{backbone}", objective_metric: score, max_trials: 16,
        sampler: {name: random, seed: 0}, pruner: {name: none}}
search_space: {x: {type: float, low: 0.0, high: 1.0}}
backbones: [sleep]
data: {synthetic: {sentences: 20, seed: 0}}
train: {trainer: "fake_trainers:sleeps_one_second"}
k_fold: {enabled: false}
mlflow: {enabled: false}
"""
TINY = ["study.max_trials=8", "study.pruner.name=none", "mlflow.enabled=false"]


def trials_per_minute(workdir: Path, argv: list[str], study: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}
    subprocess.run(argv, cwd=workdir, env=env, check=True, capture_output=True)
    db = workdir / "outputs" / "hpo" / study / "study.db"
    return 60_000 / per_trial_ms(f"sqlite:///{db}", study)


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in (1, 2, 4):
            sleepy_dir = Path(tmp) / f"sleepy{k}"
            sleepy_dir.mkdir()
            (sleepy_dir / "c.yaml").write_text(SLEEPY)
            sleepy = trials_per_minute(sleepy_dir, [str(BIN / "hposweep"), "run", "c.yaml",
                                                    "--workers", str(k)], "scale_sleep")
            tiny_dir = Path(tmp) / f"tiny{k}"
            tiny_dir.mkdir()
            tiny = trials_per_minute(tiny_dir, [str(BIN / "hposweep"), "run",
                                                str(REPO / "configs/smoke.yaml"), *TINY,
                                                "--workers", str(k)], "smoke_tiny-bert")
            rows.append((k, sleepy, tiny))
    print(f"trials per minute on one study ({os.cpu_count()} cores)")
    print(f"{'workers':>8}{'1 s sleep':>12}{'speed-up':>10}{'tiny model':>12}{'speed-up':>10}")
    for k, sleepy, tiny in rows:
        print(f"{k:>8}{sleepy:>12.1f}{sleepy / rows[0][1]:>10.2f}{tiny:>12.1f}"
              f"{tiny / rows[0][2]:>10.2f}")


if __name__ == "__main__":
    main()
