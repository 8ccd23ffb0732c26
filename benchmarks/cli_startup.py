"""`hposweep --help` whole-process time against `python -c "import typer, rich"`.

Target: under 1.5x the baseline (the CLI module must not import torch & co).
"""

from __future__ import annotations

import sys

from _common import BIN, median_wall

REPEATS = 9


def main() -> None:
    baseline = median_wall([sys.executable, "-c", "import typer, rich"], REPEATS)
    help_ = median_wall([str(BIN / "hposweep"), "--help"], REPEATS)
    heavy = median_wall([sys.executable, "-c", "import typer, rich, torch, transformers, optuna, "
                         "mlflow"], 3)
    rows = [("python -c 'import typer, rich' (baseline)", baseline),
            ("hposweep --help", help_),
            ("python -c 'import typer, rich, torch, transformers, ...'", heavy)]
    print(f"{'what':<58}{'median wall (s)':>16}")
    for name, seconds in rows:
        print(f"{name:<58}{seconds:>16.3f}")
    print(f"hposweep --help / baseline = {help_ / baseline:.2f}x (target < 1.5x)")


if __name__ == "__main__":
    main()
