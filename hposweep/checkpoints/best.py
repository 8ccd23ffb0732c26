"""``best.json``: which checkpoints a backbone dir keeps, best first, read without writing.

:class:`BestRecord` is what the reading commands (``status``, ``best``, ``export``) use;
the sweep's :class:`~hposweep.checkpoints.manager.CheckpointManager` extends it with the
writes. Nothing the file says is resolved: an entry that names anything but a checkpoint
dir of this sweep for its own trial is ignored with a warning, and a symlink where a dir
of ours should be is reported and never followed."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hposweep.checkpoints.files import first_link
from hposweep.checkpoints.layout import CheckpointLayout


@dataclass(frozen=True)
class BestEntry:
    run_id: str  # the sweep that owns it: sweeps sharing a backbone dir never touch each other's
    trial_number: int
    value: float
    checkpoint: str  # relative to the layout root
    values: tuple[float, ...] | None = None  # every objective's, with a Pareto front

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.values is None:
            del data["values"]  # best.json of a single-objective sweep, as before
        return data


class BestRecord:
    """A read-only view of a sweep's ``best.json`` and of its checkpoint dirs on disk.
    ``warn`` hears (once each) of entries ignored and links not followed."""

    def __init__(self, layout: CheckpointLayout, warn: Callable[[str], None] = lambda _: None) -> None:
        self.layout = layout
        self.warn = warn
        self._reported: set[str] = set()

    def _readable(self) -> bool:
        try:
            json.loads(self.layout.best_file.read_text(encoding="utf-8"))["best"]
        except (ValueError, KeyError, TypeError, OSError):
            return False
        return True


    def entries(self) -> list[BestEntry]:
        """This sweep's kept best checkpoints, best first, from ``best.json``. An entry that
        names anything but a checkpoint dir of this layout for its own trial is ignored."""
        return [e for e in self._all_entries()
                if e.run_id == self.layout.run_id and self._names_a_checkpoint(e)]

    def _all_entries(self) -> list[BestEntry]:
        """Every entry of ``best.json``, any sweep's, as written."""
        path = self.layout.best_file
        if not path.exists():
            return []
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return [BestEntry(str(e["run_id"]), int(e["trial_number"]), float(e["value"]),
                              str(e["checkpoint"]),
                              tuple(map(float, e["values"])) if e.get("values") else None)
                    for e in raw["best"]]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def _names_a_checkpoint(self, entry: BestEntry) -> bool:
        parsed = self.layout.parse_checkpoint(entry.checkpoint)
        if parsed is not None and parsed[0] == entry.trial_number:
            return True
        self._warn_once(repr(entry), (
            f"{self.layout.best_file}: ignoring trial {entry.trial_number}'s entry "
            f"{entry.checkpoint!r} (this sweep's checkpoints are trial_{entry.trial_number}_"
            f"{self.layout.run_id}[_fold<k>]/checkpoint); nothing it names is deleted"))
        return False

    def checkpoint_of(self, number: int) -> Path | None:
        """The kept checkpoint dir of a trial, if one is on disk."""
        return self.kept_checkpoints().get(number)

    def kept_checkpoints(self) -> dict[int, Path]:
        """Trial number -> its kept checkpoint dir on disk, from one read of ``best.json``."""
        kept: dict[int, Path] = {}
        for entry in self.entries():
            path = self.layout.root / entry.checkpoint
            if entry.trial_number not in kept and self._is_ours(path):
                kept[entry.trial_number] = path
        return kept

    def _checkpoints_on_disk(self) -> list[tuple[int, int | None, Path]]:
        """(trial, fold, dir) of this sweep's checkpoint dirs (real dirs), by trial and fold."""
        found = []
        for child in self.layout.root.iterdir():
            parsed = self.layout.parse_trial_dir(child.name)
            if parsed is not None and self._is_ours(child / "checkpoint"):
                found.append((*parsed, child / "checkpoint"))
        return sorted(found, key=lambda f: (f[0], -1 if f[1] is None else f[1]))

    def _is_ours(self, path: Path) -> bool:
        """Whether ``path`` is a real dir, with no symlink from the root down: a link where
        one of ours should be is reported (once) and never followed."""
        link = first_link(path, self.layout.root)
        if link is None:
            return path.is_dir()
        where = "it" if link == path else link.relative_to(self.layout.root)
        self._warn_once(str(path), (
            f"ignoring {path.relative_to(self.layout.root)}: {where} is a symlink, not a dir "
            "this sweep made; links are never followed or deleted"))
        return False

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._reported:
            self._reported.add(key)
            self.warn(message)
