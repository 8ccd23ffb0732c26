"""Trial checkpoints on disk: the directory layout, atomic saves, and the best-only rule.

Order of operations when a trial becomes the best (the one the seeds learned the hard
way): the checkpoint is written completely into a ``.tmp-*`` dir and renamed into its
final name -> ``best.json`` is replaced atomically -> only then are checkpoints that
fell out of the best ``keep_best`` deleted. A crash at any instant leaves at least one
complete best checkpoint and never a half-written one under a final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hposweep.errors import UserError
from hposweep.faults import kill_point

BEST_FILE = "best.json"
LOCK_FILE = ".best.lock"
STAGING_PREFIX = ".tmp-"
METADATA_FILE = "hposweep.json"


@dataclass(frozen=True)
class CheckpointLayout:
    """``{root}/trial_{n}_{run_id}[_fold{k}]/checkpoint/`` with root = ``{output_dir}/hpo/{backbone}``."""

    root: Path
    run_id: str

    def __post_init__(self) -> None:
        # The run id comes from the study storage: never let it steer a path elsewhere.
        if not re.fullmatch(r"[0-9a-f]{8}", self.run_id):
            raise UserError(f"the study's {self.run_id!r} is not a sweep id (8 hex digits); "
                            "the study storage was edited by hand?")

    def contains(self, path: Path) -> bool:
        """Whether ``path`` stays inside this sweep's dir (nothing is written or deleted
        outside ``output_dir`` because a file said so)."""
        return path.resolve().is_relative_to(self.root.resolve())

    def trial_dir(self, number: int, fold: int | None) -> Path:
        suffix = f"_fold{fold}" if fold is not None else ""
        return self.root / f"trial_{number}_{self.run_id}{suffix}"

    def checkpoint_dir(self, number: int, fold: int | None) -> Path:
        return self.trial_dir(number, fold) / "checkpoint"

    def staging_dir(self, number: int, fold: int | None) -> Path:
        name = self.trial_dir(number, fold).name
        return self.root / f"{STAGING_PREFIX}{name}-{uuid.uuid4().hex[:8]}"

    @property
    def best_file(self) -> Path:
        return self.root / BEST_FILE


@dataclass(frozen=True)
class BestEntry:
    run_id: str  # the sweep that owns it: sweeps sharing a backbone dir never touch each other's
    trial_number: int
    value: float
    checkpoint: str  # relative to the layout root


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temp file in the same dir, fsync, then replace: readers see old or new."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class CheckpointManager:
    """Decides where each fold saves and which saved checkpoints stay on disk.

    With ``save_only_best`` only the last fold of a trial saves (k-fold keeps the last
    fold's model), into a staging dir. Once the trial's value is known the staged
    checkpoint is *sealed* (``hposweep.json`` written: it is complete), and after the
    study has recorded the trial it is kept only if its objective is strictly better
    than every other finished trial's in the study, judged under a file lock so that
    processes sharing ``output_dir`` agree. Without ``save_only_best`` every fold's
    checkpoint is kept (the old behaviour) and ``best.json`` still names the best.
    """

    def __init__(self, layout: CheckpointLayout, save_only_best: bool, keep_best: int,
                 maximize: bool, warn: Callable[[str], None]) -> None:
        self.layout = layout
        self.save_only_best = save_only_best
        self.keep_best = keep_best
        self.maximize = maximize
        self.warn = warn
        self._staged: dict[int, tuple[int | None, Path]] = {}  # trial -> (fold, staging dir)
        self._said_no_checkpoint = False

    def lock(self) -> Any:
        """The lock every process sharing this backbone dir takes for decisions that must
        be made once: the best checkpoint, the MLflow parent run, the final logging.
        (An OS file lock: it dies with its process, so a crash never leaves it held.)"""
        from filelock import FileLock

        return FileLock(self.layout.root / LOCK_FILE, timeout=600)

    # ------------------------------------------------------------ during a trial

    def target_for_fold(self, number: int, fold: int | None, last_fold: bool) -> Path | None:
        """Where the trainer should save this fold's model, or None to skip saving."""
        if self.save_only_best and not last_fold:
            return None
        staging = self.layout.staging_dir(number, fold)
        try:
            staging.mkdir(parents=True)
        except OSError as exc:
            self.warn(f"trial {number}: cannot create a checkpoint dir ({exc}); not saving")
            return None
        self._staged[number] = (fold, staging)
        return staging / "checkpoint"

    def fold_finished(self, number: int, metadata: dict[str, Any]) -> None:
        """Seal this fold's checkpoint; without ``save_only_best`` it is final at once."""
        if not self._seal(number, metadata) or self.save_only_best:
            return
        fold, staging = self._staged.pop(number)
        self._rename_into_place(number, fold, staging)

    def trial_valued(self, number: int, metadata: dict[str, Any]) -> None:
        """The trial's objective is known: seal its staged checkpoint (now complete)."""
        if self.save_only_best:
            self._seal(number, metadata)

    def trial_finished(self, number: int, value: float,
                       study_values: Callable[[], list[float]]) -> Path | None:
        """After the study recorded the trial as COMPLETE: keep its checkpoint if it is the
        new best (strictly better than every other finished trial). Returns the kept path."""
        if not self._is_new_best(number, value, study_values):  # most trials: no lock needed
            self.discard(number)
            return None
        try:
            with self.lock():
                if not self._is_new_best(number, value, study_values):  # again, under the lock
                    self.discard(number)
                    return None
                entries = self.entries()
                kept = self._keep(number)
                if kept is None:
                    return None
                entry = BestEntry(self.layout.run_id, number, value,
                                  str(kept.relative_to(self.layout.root)))
                try:
                    self._record_and_prune([entry, *entries])
                except OSError:
                    if self.save_only_best:  # not recorded, so not kept: leave nothing behind
                        shutil.rmtree(kept.parent, ignore_errors=True)
                    raise
                return kept
        except OSError as exc:
            self.warn(f"trial {number}: checkpoint not kept ({exc}); the previous best is untouched")
            self.discard(number)
            return None

    def discard(self, number: int) -> None:
        """Remove whatever this trial staged and did not keep."""
        if number in self._staged:
            shutil.rmtree(self._staged.pop(number)[1], ignore_errors=True)

    # ------------------------------------------------------------ after a crash

    def recover(self, trial_states: dict[int, tuple[str, float | None]],
                study_values: Callable[[int], list[float]]) -> None:
        """Clean what a killed process left: staging dirs of trials no longer running are
        deleted, unless sealed for a COMPLETE trial (killed between the study recording
        it and the best decision): that one is offered again. ``best.json`` is reconciled
        with the checkpoint dirs on disk."""
        pattern = re.compile(rf"^{STAGING_PREFIX}trial_(\d+)_{re.escape(self.layout.run_id)}"
                             r"(?:_fold(\d+))?-[0-9a-f]+$")
        for staging in sorted(self.layout.root.glob(f"{STAGING_PREFIX}trial_*")):
            match = pattern.match(staging.name)
            if match is None:
                continue  # another sweep's: not ours to touch
            number = int(match.group(1))
            state, value = trial_states.get(number, ("GONE", None))
            if state == "RUNNING":
                continue  # a live worker is writing it
            sealed = (staging / "checkpoint" / METADATA_FILE).is_file()
            if state == "COMPLETE" and sealed and value is not None and self.save_only_best:
                fold = int(match.group(2)) if match.group(2) is not None else None
                self._staged[number] = (fold, staging)
                self.trial_finished(number, value, lambda n=number: study_values(n))
            else:
                shutil.rmtree(staging, ignore_errors=True)
        for tmp in self.layout.root.glob("*.tmp-*"):  # write_json_atomic's, named by pid
            pid = tmp.name.rsplit("-", 1)[1]
            if tmp.is_file() and pid.isdigit() and not Path(f"/proc/{pid}").exists():
                tmp.unlink(missing_ok=True)
        self._reconcile(trial_states)

    def _reconcile(self, trial_states: dict[int, tuple[str, float | None]]) -> None:
        """Make ``best.json`` agree with the disk and the study: drop entries whose dir is
        gone; adopt sealed checkpoints of COMPLETE trials it does not name (a kill between
        rename and record). An unreadable file is moved aside, never deleted."""
        path = self.layout.best_file
        if path.exists() and not self._readable():
            aside = path.with_name(f"{BEST_FILE}.unreadable-{int(time.time())}")
            os.replace(path, aside)
            self.warn(f"{path} was unreadable: moved to {aside.name} and rebuilt from the "
                      "checkpoints on disk")
        entries = self.entries()
        present = [e for e in entries if (self.layout.root / e.checkpoint).is_dir()]
        named = {e.checkpoint for e in present}
        pattern = f"trial_*_{self.layout.run_id}*/checkpoint/{METADATA_FILE}"
        for meta in sorted(self.layout.root.glob(pattern)):
            checkpoint = str(meta.parent.relative_to(self.layout.root))
            try:
                number = int(json.loads(meta.read_text())["trial_number"])
            except (ValueError, KeyError, TypeError):
                continue
            state, value = trial_states.get(number, ("GONE", None))
            if checkpoint not in named and state == "COMPLETE" and value is not None:
                present.append(BestEntry(self.layout.run_id, number, value, checkpoint))
        if present != entries or (present and not path.exists()):
            self._record_and_prune(present)

    def _readable(self) -> bool:
        try:
            json.loads(self.layout.best_file.read_text(encoding="utf-8"))["best"]
        except (ValueError, KeyError, TypeError, OSError):
            return False
        return True

    # ------------------------------------------------------------ reading

    def entries(self) -> list[BestEntry]:
        """This sweep's kept best checkpoints, best first, from ``best.json``."""
        return [e for e in self._all_entries() if e.run_id == self.layout.run_id]

    def _all_entries(self) -> list[BestEntry]:
        path = self.layout.best_file
        if not path.exists():
            return []
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            entries = [BestEntry(str(e["run_id"]), int(e["trial_number"]), float(e["value"]),
                                 str(e["checkpoint"])) for e in raw["best"]]
        except (OSError, ValueError, KeyError, TypeError):
            return []
        outside = [e for e in entries if not self.layout.contains(self.layout.root / e.checkpoint)]
        for entry in outside:
            self.warn(f"{path}: ignoring an entry that points outside {self.layout.root}: "
                      f"{entry.checkpoint!r}")
        return [e for e in entries if e not in outside]

    def checkpoint_of(self, number: int) -> Path | None:
        """The kept checkpoint dir of a trial, if one is on disk."""
        for entry in self.entries():
            if entry.trial_number == number and (self.layout.root / entry.checkpoint).is_dir():
                return self.layout.root / entry.checkpoint
        return None

    # ------------------------------------------------------------ internals

    def _is_new_best(self, number: int, value: float,
                     study_values: Callable[[], list[float]]) -> bool:
        """Strictly better than every other finished trial (the study's and best.json's:
        another process' best may be recorded before its trial is)."""
        rivals = study_values() + [e.value for e in self.entries() if e.trial_number != number]
        return not rivals or self._better(value, self._best(rivals))

    def _better(self, value: float, than: float) -> bool:
        return value > than if self.maximize else value < than

    def _best(self, values: list[float]) -> float:
        return max(values) if self.maximize else min(values)

    def _seal(self, number: int, metadata: dict[str, Any]) -> bool:
        """Write ``hposweep.json`` into the staged checkpoint: from now on it is complete."""
        if number not in self._staged:
            return False
        checkpoint = self._staged[number][1] / "checkpoint"
        if not checkpoint.is_dir() or not any(checkpoint.iterdir()):
            if not self._said_no_checkpoint:  # a trainer that never saves: say it once
                self.warn(f"trial {number}: the trainer saved nothing in ctx.checkpoint_dir; "
                          "no checkpoint is kept for such trials")
                self._said_no_checkpoint = True
            self.discard(number)
            return False
        try:
            write_json_atomic(checkpoint / METADATA_FILE, metadata)
        except OSError as exc:
            self.warn(f"trial {number}: checkpoint not kept ({exc})")
            self.discard(number)
            return False
        return True

    def _keep(self, number: int) -> Path | None:
        """The trial's checkpoint under its final name (renamed there now if staged)."""
        if number in self._staged:
            fold, staging = self._staged.pop(number)
            return self._rename_into_place(number, fold, staging)
        if self.save_only_best:
            return None
        # Every fold was kept already; the last fold's stands for the trial.
        kept = sorted(self.layout.root.glob(f"trial_{number}_{self.layout.run_id}*/checkpoint"))
        return kept[-1] if kept else None

    def _rename_into_place(self, number: int, fold: int | None, staging: Path) -> Path | None:
        """Rename a sealed staging checkpoint to its final name (atomic on one filesystem)."""
        final = self.layout.checkpoint_dir(number, fold)
        if final.exists():
            self.warn(f"{final} already exists; left as it is, the new checkpoint is discarded")
            shutil.rmtree(staging, ignore_errors=True)
            return None
        kill_point("checkpoint:staged")
        final.parent.mkdir(exist_ok=True)
        os.rename(staging / "checkpoint", final)
        kill_point("checkpoint:renamed")
        shutil.rmtree(staging, ignore_errors=True)
        return final

    def _record_and_prune(self, candidates: list[BestEntry]) -> None:
        ordered = sorted(candidates, key=lambda e: e.value, reverse=self.maximize)
        kept, dropped = ordered[: self.keep_best], ordered[self.keep_best :]
        if not self.save_only_best:
            kept, dropped = ordered, []
        others = [e for e in self._all_entries() if e.run_id != self.layout.run_id]
        write_json_atomic(self.layout.best_file, {"best": [asdict(e) for e in kept + others]})
        kill_point("checkpoint:recorded")
        for entry in dropped:
            checkpoint = self.layout.root / entry.checkpoint
            shutil.rmtree(checkpoint, ignore_errors=True)
            with contextlib.suppress(OSError):
                checkpoint.parent.rmdir()  # the trial dir, unless a resume dir is in it
