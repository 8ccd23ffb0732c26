"""Interrupts at random moments inside MLflow writes (SQLite store), as Ctrl-C lands: how
often the interrupted sweep could still end its runs. Baseline: the same tracker with the
interrupt's frames kept (hposweep before the fix); both sides alternate, same seeds.

Per attempt: a SIGALRM (raising KeyboardInterrupt, as Ctrl-C does) fires 0.1-20 ms into
creating, logging to and ending a fold run through ``SweepTracker``; then, while handling
the interrupt (as trial.py does), the trial run is written to. Counted: interrupts that
came out as something else (tracking off) and clean-ups that could not write (each waits
MLflow's SQLite busy timeout, 20 s, first: the baseline is slow).
"""

from __future__ import annotations

import collections
import gc
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hposweep import interrupts  # noqa: E402
from hposweep.config import load  # noqa: E402
from hposweep.tracking import SweepTracker  # noqa: E402

ATTEMPTS = 60
SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"


def _raise(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def attempts(release: bool, seed: int) -> collections.Counter[str]:
    real = interrupts.release_frames
    interrupts.release_frames = real if release else (lambda exc: None)
    counts: collections.Counter[str] = collections.Counter()
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load(SMOKE, [f"mlflow.tracking_uri=sqlite:///{tmp}/mlflow.db"]).config
        warnings: list[str] = []
        tracker = SweepTracker(cfg, warnings.append)
        tracker.start_sweep("study", "tiny", "sweep", {}, None, "{}", resumed=False)
        trial = tracker.start_trial(0, {})
        signal.signal(signal.SIGALRM, _raise)
        for _ in range(ATTEMPTS):
            tracker.enabled, warnings[:] = True, []
            signal.setitimer(signal.ITIMER_REAL, rng.uniform(0.0001, 0.02))
            try:
                try:
                    fold = tracker.start_fold(trial, 0, 0)
                    tracker.log(fold, {"f1": 0.5}, step=0)
                    tracker.end_run(fold, "COMPLETE")
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                lost = not tracker.enabled
                counts["interrupt lost: tracking off" if lost else "no interrupt inside MLflow"] += 1
            except KeyboardInterrupt:
                tracker.log(trial, tags={"cleanup": "1"})
                counts["interrupted, runs ended" if tracker.enabled else "interrupted, clean-up failed"] += 1
            gc.collect()  # each attempt starts with no lock left from the one before
    interrupts.release_frames = real
    return counts


def main() -> None:
    names = {False: "frames kept (before)", True: "frames released (hposweep)"}
    for seed in range(2):  # alternating sides, the same random moments on both
        for release in (False, True):
            started = time.monotonic()
            counts = attempts(release, seed)
            print(f"seed {seed} {names[release]:28s} {time.monotonic() - started:5.1f} s  "
                  + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())), flush=True)


if __name__ == "__main__":
    main()
