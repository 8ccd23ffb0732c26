"""`hposweep run --workers K` shows what one process shows: each worker's trials as they
start and end (with their value, state and reason), the final table and the
"N complete / pruned / failed" line; what the trainer prints is kept in a worker's log."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import fake_config, load_study, process_env

BIN = Path(sys.executable).parent
# Half the trials fail (x > 0.5) and are replaced: which worker gets them is timing, so no
# worker may stop at its own max_failures (default max_trials) before the study has its 6.
SWEEP = ["--workers", "2", "train.trainer=fake_trainers:chatty", "study.max_trials=6",
         "study.max_failures=50", "k_fold.enabled=false", "mlflow.enabled=false"]


def run_workers(workdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "hposweep"), "run", str(fake_config(workdir)), *SWEEP,
                           *extra], cwd=workdir, env=process_env(), capture_output=True,
                          text=True, timeout=300)


def test_every_workers_trials_are_shown_as_they_end(workdir: Path) -> None:
    done = run_workers(workdir)
    assert done.returncode == 0, done.stderr
    trials = load_study(workdir / "outputs", "fake_fake").trials
    ended = {int(m[2]): (int(m[1]), m[3]) for m in re.finditer(
        r"^worker (\d): trial (\d+) (COMPLETE|FAIL|PRUNED)", done.stdout, re.M)}
    assert ended == {t.number: (ended[t.number][0], t.state.name) for t in trials}, done.stdout
    assert {worker for worker, _ in ended.values()} == {1, 2}, "both workers' trials"
    for trial in trials:
        if trial.state.name == "FAIL":  # its reason, on its row
            assert re.search(rf"^worker \d: trial {trial.number} FAIL: RuntimeError: simulated "
                             r"crash at x=", done.stdout, re.M)
        else:
            assert f"trial {trial.number} COMPLETE {trial.value:.4f}" in done.stdout
    started = set(map(int, re.findall(r"^worker \d: trial (\d+) started: x=", done.stdout, re.M)))
    assert started == {t.number for t in trials}
    complete = sum(t.state.name == "COMPLETE" for t in trials)
    failed = sum(t.state.name == "FAIL" for t in trials)
    assert f"trials: {complete} complete, 0 pruned, {failed} failed (study total 6/6)" in done.stdout
    assert "fake_fake: trials" in done.stdout  # the final table


def test_what_the_trainer_prints_goes_to_each_workers_log(workdir: Path) -> None:
    done = run_workers(workdir)
    assert done.returncode == 0, done.stderr
    assert "chatty trainer" not in done.stdout + done.stderr
    logs = workdir / "outputs" / "hpo" / "workers"
    assert f"goes to {Path('outputs/hpo/workers')}/worker-N.log" in done.stdout
    printed = "".join((logs / f"worker-{i}.log").read_text() for i in (1, 2))
    for trial in load_study(workdir / "outputs", "fake_fake").trials:
        assert f"chatty trainer: trial {trial.number} x=" in printed
        assert f"chatty trainer: stderr of trial {trial.number}" in printed


def test_json_with_workers_prints_only_the_summary(workdir: Path) -> None:
    done = run_workers(workdir, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["exit_code"] == 0
    (backbone,) = summary["backbones"]
    assert backbone["backbone"] == "fake"
    assert backbone["n_complete"] + backbone["n_pruned"] == 6
    assert len(backbone["trials"]) == len(load_study(workdir / "outputs", "fake_fake").trials)
