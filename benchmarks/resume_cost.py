"""Compute wasted by one kill -9 in the middle of a 3-fold trial (4 epochs per fold):
epochs re-trained by the retried trial with mid-trial resume, against the baseline of
retrying from scratch (the resume dir removed: what a plain same-params retry does),
and resume start-up time (process start -> the retried trial begins)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _common import BIN, REPO

SWEEP = ["study.max_trials=1", "k_fold.n_splits=3", "train.epochs=4", "study.pruner.name=none",
         "data.synthetic.sentences=600"]
KILL_AT = "trial0:fold1:epoch1"  # fold 2 of 3, after its 2nd epoch (state saved at epoch end)


def hposweep(out: Path, kill_at: str | None = None) -> tuple[int, float, float | None]:
    """(exit code, wall s, s until the retried trial started) of one `hposweep run`."""
    env = {k: v for k, v in os.environ.items() if k != "HPOSWEEP_KILL_AT"}
    env["PYTHONUNBUFFERED"] = "1"
    if kill_at:
        env["HPOSWEEP_KILL_AT"] = kill_at
    start = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "hposweep"), "run", str(REPO / "configs/smoke.yaml"),
                             *SWEEP, f"output_dir={out}"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    retry_started = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if "(retry of trial" in line and retry_started is None:
            retry_started = time.perf_counter() - start
    return proc.wait(), time.perf_counter() - start, retry_started


def epochs_trained_by_retry(out: Path) -> int:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("hposweep-smoke")
    runs = client.search_runs([experiment.experiment_id],
                              filter_string="tags.trial_number = '1' and tags.fold_idx != ''")
    return sum(len(client.get_metric_history(r.info.run_id, "loss")) for r in runs)


def scenario(tmp: Path, name: str, keep_resume_state: bool) -> tuple[str, int, float, float]:
    out = tmp / name
    code, _, _ = hposweep(out, KILL_AT)
    assert code == -9, f"expected a SIGKILL, got {code}"
    if not keep_resume_state:
        for resume in (out / "hpo" / "tiny-bert").glob("trial_*/resume"):
            shutil.rmtree(resume)
    code, wall, retry_started = hposweep(out)
    assert code == 0 and retry_started is not None
    return name, epochs_trained_by_retry(out), retry_started, wall


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = [scenario(Path(tmp), "mid-trial resume (hposweep)", True),
                scenario(Path(tmp), "retry from scratch (baseline)", False)]
    done, total = 6, 12  # fold 1 (4 epochs) + 2 epochs of fold 2 were trained before the kill
    print(f"kill -9 at {KILL_AT}: a 3-fold x 4-epoch trial killed after {done} of {total} epochs")
    print(f"{'after the kill':<32}{'epochs trained':>16}{'re-trained':>12}{'start-up s':>12}"
          f"{'resume run s':>14}")
    for name, epochs, started, wall in rows:
        print(f"{name:<32}{epochs:>16}{epochs - (total - done):>12}{started:>12.1f}{wall:>14.1f}")
    print("epochs trained: per-epoch entries in the retried trial's fold runs; re-trained: "
          f"beyond the {total - done} that were never done. A kill inside an epoch also loses "
          "that partial epoch (or fewer steps with train.resume_every_steps).")


if __name__ == "__main__":
    main()
