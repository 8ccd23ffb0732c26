"""The simulated compute benchmarks still run against the code they measure (``--quick``:
tiny sizes, figures meaningless): they drive hposweep's trial loop in process and patch
its internals for their "before" arms, so a refactor can break them without any other
test noticing (the warm-start benchmark's old-behaviour arm once patched a function the
loop no longer called). Their figures are never asserted."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.parametrize(("script", "rows"), [
    ("pruning.py", ["none", "median + wilcoxon", "median + wilcoxon, fold 0 as the others (before)",
                    "none (plain)", "Optuna hyperband (plain)"]),
    ("warm_start.py", ["trials to the cold sweep's final best", "final best true score"]),
])
def test_a_simulated_benchmark_runs_every_arm(script: str, rows: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRUNING_")}  # every arm
    done = subprocess.run([sys.executable, script, "--quick"], cwd=BENCHMARKS, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for row in rows:
        # the row's name, then the column gap: "none" is not "none (plain)"
        assert any(line.startswith(row + "  ") for line in done.stdout.splitlines()), (row, done.stdout)


def test_every_name_a_benchmark_imports_from_hposweep_exists() -> None:
    """Benchmarks import hposweep's internals inside their functions, where only a run
    finds a name that moved (gpu_check.py's ``device_of``, which needs a GPU to run)."""
    missing = []
    for script in sorted(BENCHMARKS.glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hposweep"):
                module = importlib.import_module(node.module)
                missing += [f"{script.name}: {node.module}.{alias.name}" for alias in node.names
                            if not hasattr(module, alias.name)
                            and importlib.util.find_spec(f"{node.module}.{alias.name}") is None]
    assert not missing
