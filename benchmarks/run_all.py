"""Run every benchmark in turn and print its figures (nothing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPTS = ["cli_startup.py", "smoke_sweep.py", "checkpoint_disk.py", "trainer_throughput.py",
           "group_by_length_padding.py", "early_stopping_epochs.py",
           "resume_cost.py", "overhead.py", "workers_scaling.py", "sqlite_serialization.py",
           "front_disk.py", "pruning.py", "pruning_builtin.py", "warm_start.py", "dashboard.py",
           "refit_optimism.py"]


def main() -> None:
    here = Path(__file__).resolve().parent
    for script in SCRIPTS:
        print(f"\n== {script}", flush=True)
        subprocess.run([sys.executable, str(here / script)], cwd=here, check=True)


if __name__ == "__main__":
    main()
