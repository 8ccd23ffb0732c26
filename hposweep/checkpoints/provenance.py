"""Where a checkpoint came from: library versions, the git commit, the time."""

from __future__ import annotations

import functools
import subprocess
import time
from importlib import metadata

PACKAGES = ("hposweep", "torch", "transformers", "optuna", "mlflow")


@functools.cache
def versions() -> dict[str, str]:
    found = {}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


@functools.cache
def git_commit() -> str | None:
    """The commit of the working directory's repository, when there is one."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
