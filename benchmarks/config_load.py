"""`hposweep validate` whole-process time: this checkout against another (e.g. a worktree
of the commit before the config schema moved to pydantic), on a valid config and on a
file refused before parsing. Both sides alternate which runs first; medians.

    git worktree add /tmp/base <commit> && .venv/bin/python benchmarks/config_load.py --baseline /tmp/base
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from _common import REPO, timed_process

REPEATS = 9


def wall(checkout: Path, config: Path) -> float:
    """One ``hposweep validate`` with ``checkout`` first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    argv = [sys.executable, "-m", "hposweep", "validate", str(config)]
    return timed_process(argv, env=env)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "bad.yaml"
        bad.write_text("study: [" + "[" * 100 + "\n")  # refused by the nesting scan
        cases = {"valid (configs/smoke.yaml)": Path(args.baseline / "configs" / "smoke.yaml"),
                 "refused before parsing": bad}
        print(f"{'case':<30}{'baseline (s)':>14}{'this (s)':>12}{'ratio':>8}")
        for name, config in cases.items():
            times: dict[str, list[float]] = {"base": [], "this": []}
            for i in range(REPEATS):
                order = [("base", args.baseline), ("this", REPO)][:: 1 if i % 2 == 0 else -1]
                for side, checkout in order:
                    times[side].append(wall(checkout, config))
            base, this = (statistics.median(times[k]) for k in ("base", "this"))
            print(f"{name:<30}{base:>14.3f}{this:>12.3f}{this / base:>7.2f}x")


if __name__ == "__main__":
    main()
