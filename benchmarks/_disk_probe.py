"""Runs `hposweep` in this process and records the bytes under ROOT at every instant they
could be at a peak: the disk peak without sampling gaps. Used by checkpoint_disk.py.

    python _disk_probe.py RECORD.json ROOT -- run CONFIG key=value ...

Why there are no gaps: the bytes under ROOT go down only through a call that deletes or
truncates a file, or renames one over another (``os.unlink``, ``remove``, ``rename``,
``replace``, ``truncate``, ``ftruncate``; ``shutil.rmtree`` and ``pathlib`` go through
them). Between two such calls they can only grow, so the largest value of each interval
is the one right before the next such call, or at the end of the run: exactly where the
probe measures. It measures synchronously, inside the call, so the sweep is paused while
the tree is walked. Two other routes exist: C code deleting a file, and a file opened for
writing in place ("w" truncates it). A sweep takes neither under ROOT: every file is
written new (in a fresh staging or ``.tmp-*`` name, then renamed) and deleted from Python.
A shrink by such a route would show as a measurement below the one taken right after the
previous call: ``unseen_shrinks`` counts the intervals where that happened (0: none).

Bytes are split into resume state (anything under a ``resume/`` dir, the full training
state a trial keeps so it can continue) and checkpoints (everything else: staging dirs,
kept checkpoints, ``best.json``). One resume state is the largest complete ``state-*``
dir seen (weights, optimizer, scheduler and RNG states of one fold).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SHRINKING = ("unlink", "remove", "rename", "replace", "truncate", "ftruncate")
RESUME_DIR = "resume"
STATE_PREFIX = "state-"  # a complete state (written as .tmp-state-*, then renamed)


@dataclass
class Usage:
    checkpoints: int = 0
    resume: int = 0
    largest_state: int = 0

    @property
    def total(self) -> int:
        return self.checkpoints + self.resume


def usage(root: Path) -> Usage:
    found = Usage()
    states: dict[tuple[str, ...], int] = defaultdict(int)
    for directory, _, files in os.walk(root):
        parts = Path(directory).relative_to(root).parts
        sizes = sum(os.lstat(os.path.join(directory, name)).st_size for name in files)
        if RESUME_DIR not in parts:
            found.checkpoints += sizes
            continue
        found.resume += sizes
        state = next((i for i, part in enumerate(parts) if part.startswith(STATE_PREFIX)), None)
        if state is not None:
            states[parts[: state + 1]] += sizes
    found.largest_state = max(states.values(), default=0)
    return found


@dataclass
class Record:
    peak: Usage = field(default_factory=Usage)  # the moment with the most bytes in all
    most_checkpoints: int = 0  # the most checkpoint bytes at any moment
    most_resume: int = 0  # the most resume-state bytes at any moment
    one_state: int = 0
    final: Usage = field(default_factory=Usage)
    measurements: int = 0
    unseen_shrinks: int = 0
    exit_code: int = 0


class Probe:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.record = Record()
        self._after_last_call: int | None = None

    def measure(self) -> Usage:
        now = usage(self.root) if self.root.exists() else Usage()
        r = self.record
        r.measurements += 1
        if now.total > r.peak.total:
            r.peak = now
        r.most_checkpoints = max(r.most_checkpoints, now.checkpoints)
        r.most_resume = max(r.most_resume, now.resume)
        r.one_state = max(r.one_state, now.largest_state)
        return now

    def before_call(self) -> None:
        now = self.measure().total
        if self._after_last_call is not None and now < self._after_last_call:
            self.record.unseen_shrinks += 1

    def after_call(self) -> None:
        self._after_last_call = self.measure().total

    def install(self) -> None:
        for name in SHRINKING:
            original = getattr(os, name)
            wrapped = self._wrap(original)
            setattr(os, name, wrapped)
            # shutil.rmtree (and others) check these sets for the function they call.
            for listing in (os.supports_dir_fd, os.supports_fd, os.supports_follow_symlinks):
                if original in listing:
                    listing.add(wrapped)

    def _wrap(self, original: Any) -> Any:
        @functools.wraps(original)
        def measured(*args: Any, **kwargs: Any) -> Any:
            self.before_call()
            try:
                return original(*args, **kwargs)
            finally:
                self.after_call()

        return measured


def main() -> None:
    record_path, root, separator, *args = sys.argv[1:]
    if separator != "--":
        raise SystemExit(__doc__)
    probe = Probe(Path(root))
    probe.install()  # before hposweep and its libraries are imported
    from hposweep.cli.app import main as hposweep

    sys.argv = ["hposweep", *args]
    try:
        hposweep()
    except SystemExit as exc:
        probe.record.exit_code = exc.code if isinstance(exc.code, int) else 1
    finally:
        probe.record.final = probe.measure()
        Path(record_path).write_text(json.dumps(asdict(probe.record)))
    sys.exit(probe.record.exit_code)


if __name__ == "__main__":
    main()
