"""The keep-the-best manager: where each fold saves, and which saved checkpoints stay.

Order of operations when a trial becomes the best: the checkpoint is written completely
into a ``.tmp-*`` dir and renamed into its final name -> ``best.json`` is replaced
atomically -> only then are checkpoints that fell out of the best ``keep_best`` deleted.
A crash at any instant leaves at least one complete best checkpoint and never a
half-written one under a final name.

Every deletion goes through :func:`hposweep.checkpoints.files.remove_tree`, which never
follows a link."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hposweep._testing.faults import kill_point
from hposweep.checkpoints.best import BestEntry, BestRecord
from hposweep.checkpoints.files import STAGING_PREFIX, remove_tree, write_json_atomic
from hposweep.checkpoints.layout import BEST_FILE, METADATA_FILE, CheckpointLayout
from hposweep.checkpoints.metadata import CheckpointMetadata, trial_number_of
from hposweep.objectives.pareto import knee, trim


class CheckpointManager(BestRecord):
    """Decides where each fold saves and which saved checkpoints stay on disk.

    With ``save_only_best`` only the last fold of a trial saves (k-fold keeps the last
    fold's model), into a staging dir. Once the trial's value is known the staged
    checkpoint is *sealed* (``hposweep.json`` written: it is complete), and after the
    study has recorded the trial it is kept only if its objective is strictly better
    than every other finished trial's in the study, judged under a file lock so that
    processes sharing ``output_dir`` agree. Without ``save_only_best`` every fold's
    checkpoint is kept and ``best.json`` still names the best.
    """

    def __init__(self, layout: CheckpointLayout, save_only_best: bool, keep_best: int,
                 maximize: bool, warn: Callable[[str], None]) -> None:
        super().__init__(layout, warn)
        self.save_only_best = save_only_best
        self.keep_best = keep_best
        self.maximize = maximize
        self._staged: dict[int, tuple[int | None, Path]] = {}  # trial -> (fold, staging dir)
        self._said_no_checkpoint = False

    def lock(self) -> Any:
        """The lock every process sharing this backbone dir takes to decide which
        checkpoints stay and to write ``best.json`` (the MLflow parent run and the final
        logging are decided under the study lock instead). An OS file lock: it dies with
        its process, so a crash never leaves it held."""
        from filelock import FileLock

        return FileLock(self.layout.lock_file, timeout=600)

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

    def fold_finished(self, number: int, metadata: Callable[[], CheckpointMetadata]) -> None:
        """Seal this fold's checkpoint; without ``save_only_best`` it is final at once.
        ``metadata`` is called only when there is a checkpoint to seal (it costs: the
        device, the git commit)."""
        if not self._seal(number, metadata) or self.save_only_best:
            return
        fold, staging = self._staged.pop(number)
        self._rename_into_place(number, fold, staging)

    def trial_valued(self, number: int, metadata: Callable[[], CheckpointMetadata]) -> None:
        """The trial's objective is known: seal its staged checkpoint (now complete)."""
        if self.save_only_best:
            self._seal(number, metadata)

    def trial_finished(self, number: int, value: Any,
                       study_values: Callable[[], list[float]]) -> Path | None:
        """After the study recorded the trial as COMPLETE: keep its checkpoint if it is the
        new best (strictly better than every other finished trial). Returns the kept path."""
        if self.save_only_best and number not in self._staged:
            return None  # nothing staged (the trainer saved nothing): nothing to decide
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
                entry = self._entry(number, value, str(kept.relative_to(self.layout.root)))
                try:
                    self._record_and_prune([entry, *entries])
                except OSError:
                    if self.save_only_best:  # not recorded, so not kept: leave nothing behind
                        self._remove(kept.parent)
                    raise
                return kept
        except OSError as exc:
            self.warn(f"trial {number}: checkpoint not kept ({exc}); the previous best is untouched")
            self.discard(number)
            return None

    def discard(self, number: int) -> None:
        """Remove whatever this trial staged and did not keep."""
        if number in self._staged:
            self._remove(self._staged.pop(number)[1])

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
            if match is None or not self._is_ours(staging):
                continue  # another sweep's, or a link: not ours to touch
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
                self._remove(staging)
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
        recorded = [e for e in self._all_entries() if e.run_id == self.layout.run_id]
        present = [e for e in self.entries() if self._is_ours(self.layout.root / e.checkpoint)]
        named = {e.checkpoint for e in present}
        for number, _, checkpoint in self._checkpoints_on_disk():
            relative = str(checkpoint.relative_to(self.layout.root))
            state, value = trial_states.get(number, ("GONE", None))
            if (relative not in named and state == "COMPLETE" and value is not None
                    and trial_number_of(checkpoint) == number):
                present.append(self._entry(number, value, relative))
        if present != recorded or (present and not path.exists()):
            self._record_and_prune(present)

    # ------------------------------------------------------------ internals

    def _remove(self, path: Path) -> None:
        remove_tree(path, self.layout.root, self.warn)

    def _entry(self, number: int, value: Any, relative: str) -> BestEntry:
        return BestEntry(self.layout.run_id, number, value, relative)

    def _is_new_best(self, number: int, value: Any,
                     study_values: Callable[[], list[float]]) -> bool:
        """Strictly better than every other finished trial (the study's and best.json's:
        another process' best may be recorded before its trial is)."""
        rivals = study_values() + [e.value for e in self.entries() if e.trial_number != number]
        return not rivals or self._better(value, self._best(rivals))

    def _better(self, value: float, than: float) -> bool:
        return value > than if self.maximize else value < than

    def _best(self, values: list[float]) -> float:
        return max(values) if self.maximize else min(values)

    def _seal(self, number: int, metadata: Callable[[], CheckpointMetadata]) -> bool:
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
            metadata().write(checkpoint)
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
        kept = [path for n, _, path in self._checkpoints_on_disk() if n == number]
        return kept[-1] if kept else None

    def _rename_into_place(self, number: int, fold: int | None, staging: Path) -> Path | None:
        """Rename a sealed staging checkpoint to its final name (atomic on one filesystem)."""
        final = self.layout.checkpoint_dir(number, fold)
        if final.exists():
            self.warn(f"{final} already exists; left as it is, the new checkpoint is discarded")
            self._remove(staging)
            return None
        kill_point("checkpoint:staged")
        final.parent.mkdir(exist_ok=True)
        if not self._is_ours(final.parent):
            self._remove(staging)
            return None
        os.rename(staging / "checkpoint", final)
        kill_point("checkpoint:renamed")
        self._remove(staging)
        return final

    def _select(self, candidates: list[BestEntry]) -> tuple[list[BestEntry], list[BestEntry]]:
        """(kept, dropped) of checkpoints that are candidates to stay, kept best first."""
        ordered = sorted(candidates, key=lambda e: e.value, reverse=self.maximize)
        if not self.save_only_best:
            return ordered, []
        return ordered[: self.keep_best], ordered[self.keep_best :]

    def _record_and_prune(self, candidates: list[BestEntry]) -> None:
        kept, dropped = self._select(candidates)
        others = [e for e in self._all_entries() if e.run_id != self.layout.run_id]
        write_json_atomic(self.layout.best_file, {"best": [e.to_json() for e in kept + others]})
        kill_point("checkpoint:recorded")
        for entry in dropped:
            checkpoint = self.layout.root / entry.checkpoint
            self._remove(checkpoint)
            with contextlib.suppress(OSError):
                checkpoint.parent.rmdir()  # the trial dir, unless a resume dir is in it


class FrontCheckpointManager(CheckpointManager):
    """Best-only for a Pareto front (several objectives, or constraints): the kept
    checkpoints are members of the study's feasible front (``study.best_trials``), at most
    ``keep_best`` of them, chosen by :func:`hposweep.objectives.pareto.trim`. Same order and lock as
    the single-objective rule: write, record in ``best.json``, then delete what fell off.

    A trial's checkpoint is kept when the trial is on the front and the rule, applied to
    the front members that still have a checkpoint plus this one, keeps it; a checkpoint
    once deleted never comes back, so with a front larger than ``keep_best`` which
    members stay depends on the order the trials finished in.
    """

    def __init__(self, layout: CheckpointLayout, save_only_best: bool, keep_best: int,
                 maximize: list[bool], warn: Callable[[str], None],
                 front: Callable[[], dict[int, tuple[float, ...]]]) -> None:
        super().__init__(layout, save_only_best, keep_best, maximize[0], warn)
        self.directions = maximize
        self.front = front  # the study's feasible Pareto front: trial -> objective values

    def trial_finished(self, number: int, value: Any,
                       study_values: Callable[[], list[float]]) -> Path | None:
        """As for one objective; a trial that is not kept may still have pushed kept
        members off the front (it dominates them): those are deleted now."""
        kept = super().trial_finished(number, value, study_values)
        if kept is None and self.save_only_best:
            self._drop_off_front()
        return kept

    def _drop_off_front(self) -> None:
        front = self.front()
        if all(e.trial_number in front for e in self.entries()):
            return  # most trials: no lock needed
        try:
            with self.lock():
                self._record_and_prune(self.entries())
        except OSError as exc:
            self.warn(f"checkpoints off the Pareto front not deleted ({exc})")

    def _entry(self, number: int, value: Any, relative: str) -> BestEntry:
        values = tuple(float(v) for v in value)
        return BestEntry(self.layout.run_id, number, values[0], relative, values)

    def _is_new_best(self, number: int, value: Any,
                     study_values: Callable[[], list[float]]) -> bool:
        front = self.front()
        if number not in front:
            return False
        held = {e.trial_number for e in self.entries()} & set(front)
        members = {n: front[n] for n in held | {number}}
        return not self.save_only_best or number in trim(
            members, self.directions, self.keep_best, knee(front, self.directions))

    def _select(self, candidates: list[BestEntry]) -> tuple[list[BestEntry], list[BestEntry]]:
        front = self.front()
        on_front = {e.trial_number: e for e in candidates if e.trial_number in front}
        order = trim({n: front[n] for n in on_front}, self.directions,
                     self.keep_best if self.save_only_best else len(on_front),
                     knee(front, self.directions))
        kept = [self._entry(n, front[n], on_front[n].checkpoint) for n in order]
        if not self.save_only_best:  # every checkpoint stays; best.json names the front
            return kept, []
        return kept, [e for e in candidates if e.trial_number not in order]
