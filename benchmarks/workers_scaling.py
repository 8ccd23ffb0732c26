"""Trials per minute of `hposweep run --workers 4` against `--workers 1` on a trainer that
sleeps 1 s (orchestration scaling apart from cores): 16 trials for one worker, 64 for four,
each repeated (the two alternating which runs first), medians reported.

Counted two ways, both with hposweep's defaults (SQLite study with heartbeats, MLflow on
its local SQLite store, resume on): from the study's timestamps (first trial start to
last trial end) and from the whole command's wall time (every worker's start-up included:
users pay it). Surplus trials (finished ones beyond max_trials, and the FAIL "not run"
ones a worker records when the study no longer needs its trial) are not counted; they are
reported apart. Target: four workers >= 3.5x one worker's trials per minute."""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    BIN,
    alternating,
    bench_env,
    checked_wall,
    copy_store,
    migrated_mlflow_store,
    quick_mode,
    span_seconds,
    study_trials,
)

from hposweep.results import reason_of

TARGET = 3.5
STUDY = "scale_sleep"
# The workload is the benchmark's (a 1-s trial, no k-fold, a random sampler: its cost does
# not grow with the study, so 64 trials are not dearer to sample than 16); every setting
# of hposweep's own orchestration is left at its default.
CONFIG = """\
study: {{name: "scale_{{backbone}}", objective_metric: score, max_trials: {trials},
        sampler: {{name: random, seed: 0}}}}
search_space: {{x: {{type: float, low: 0.0, high: 1.0}}}}
backbones: [sleep]
data: {{synthetic: {{sentences: 20, seed: 0}}}}
train: {{trainer: "fake_trainers:sleeps_one_second"}}
k_fold: {{enabled: false}}
mlflow: {{experiment: scaling}}
"""


@dataclass(frozen=True)
class Run:
    counted: int  # finished trials up to max_trials
    surplus: int  # finished beyond max_trials, plus FAIL "not run"
    other: int  # any other trial that did not finish (a real failure: should be 0)
    span_s: float  # first start to last end of the counted trials
    wall_s: float  # the whole command

    @property
    def per_minute_study(self) -> float:
        return self.counted * 60 / self.span_s

    @property
    def per_minute_wall(self) -> float:
        return self.counted * 60 / self.wall_s


def tally(trials: list[Any], wall_s: float, max_trials: int) -> Run:
    """Split a study's trials into counted, surplus and other (see :class:`Run`)."""
    finished = sorted((t for t in trials if t.state.name in ("COMPLETE", "PRUNED")),
                      key=lambda t: t.datetime_complete)
    not_run = [t for t in trials
               if t.state.name == "FAIL" and (reason_of(t) or "").startswith("not run")]
    counted = finished[:max_trials]
    surplus = len(finished) - len(counted) + len(not_run)
    return Run(len(counted), surplus, len(trials) - len(finished) - len(not_run),
               span_seconds(counted), wall_s)


def run_once(workdir: Path, workers: int, trials: int, template: Path) -> Run:
    """One `hposweep run --workers K` in a fresh dir (a migrated copy of the MLflow store)."""
    workdir.mkdir(parents=True)
    (workdir / "scale.yaml").write_text(CONFIG.format(trials=trials))
    copy_store(template, workdir / "outputs" / "mlflow.db")
    wall = checked_wall([str(BIN / "hposweep"), "run", "scale.yaml", "--workers", str(workers)],
                        cwd=workdir, env=bench_env())
    return tally(study_trials(workdir / "outputs" / "hpo" / STUDY / "study.db", STUDY), wall,
                 trials)


def summary(runs: list[Run], label: str, workers: int, trials: int) -> tuple[float, float]:
    """Print one row; returns the medians (trials/min from the study, from the wall time)."""
    study = statistics.median(r.per_minute_study for r in runs)
    wall = statistics.median(r.per_minute_wall for r in runs)
    each = " ".join(f"{r.per_minute_study:.1f}" for r in runs)
    print(f"{label:<6}{workers:>8}{trials:>8}{sum(r.surplus for r in runs):>9}"
          f"{sum(r.other for r in runs):>7}{study:>10.1f}{wall:>10.1f}    {each}")
    return study, wall


def main() -> None:
    quick = quick_mode(__doc__)
    per_worker, repeats = (4, 2) if quick else (16, 3)
    runs: dict[int, list[Run]] = {1: [], 4: []}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        template = migrated_mlflow_store(tmp)
        for i, order in enumerate(alternating((1, 4), repeats)):
            for k in order:
                runs[k].append(run_once(tmp / f"rep{i}-k{k}", k, per_worker * k, template))
    print(f"trainer sleeping 1 s, {per_worker} trials per worker; median of {repeats} runs each, "
          "alternating which runs first" + (" (--quick: figures mean nothing)" if quick else ""))
    print(f"{'':6}{'':>8}{'':>8}{'':>9}{'':>7}{'trials per minute':>20}")
    print(f"{'':6}{'workers':>8}{'trials':>8}{'surplus':>9}{'other':>7}{'study':>10}{'wall':>10}"
          "    each run (study)")
    one = summary(runs[1], "one", 1, per_worker)
    four = summary(runs[4], "four", 4, per_worker * 4)
    for how, speedup in (("study timestamps", four[0] / one[0]),
                         ("whole command, start-up included", four[1] / one[1])):
        verdict = "met" if speedup >= TARGET else "MISSED"
        print(f"speed-up, {how}: {speedup:.2f}x (target >= {TARGET}x: {verdict})")
    print("surplus: trials beyond max_trials and FAIL 'not run' ones, summed over the runs, "
          "never counted; other: trials that failed for another reason")


if __name__ == "__main__":
    main()
