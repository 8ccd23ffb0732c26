"""Wall time and peak RSS of `make run`'s sweep (configs/smoke.yaml), from a clean
output dir, against the floor of importing the stack in one process."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _common import BIN, REPO, children_peak_rss_mib, timed_process


def main() -> None:
    floor, _ = timed_process([sys.executable, "-c",
                              "import torch, transformers, optuna, mlflow, seqeval.metrics"])
    floor_rss = children_peak_rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        wall, proc = timed_process([str(BIN / "hposweep"), "run", str(REPO / "configs/smoke.yaml"),
                                    f"output_dir={tmp}/outputs", "--json"], cwd=Path(tmp))
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        rss = children_peak_rss_mib()
        resumed, _ = timed_process([str(BIN / "hposweep"), "run",
                                    str(REPO / "configs/smoke.yaml"), f"output_dir={tmp}/outputs",
                                    "--json"], cwd=Path(tmp))
    print(f"{'what':<52}{'wall (s)':>10}{'peak RSS (MiB)':>16}")
    print(f"{'import torch+transformers+optuna+mlflow (floor)':<52}{floor:>10.1f}{floor_rss:>16.0f}")
    print(f"{'hposweep run configs/smoke.yaml (4 trials x 2 folds)':<52}{wall:>10.1f}{rss:>16.0f}")
    print(f"{'same again: study finished, nothing to run':<52}{resumed:>10.1f}{'':>16}")
    print("(peak RSS is the largest process so far in this script, so each row is a max)")


if __name__ == "__main__":
    main()
