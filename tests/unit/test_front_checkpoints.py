"""The front keeper on its own: members off the front are deleted even when the trial
that pushed them off is not kept, and without save_only_best nothing is deleted while
best.json names the front."""

from __future__ import annotations

import json
from pathlib import Path

from hposweep.checkpoints.layout import CheckpointLayout
from hposweep.checkpoints.manager import FrontCheckpointManager
from hposweep.objectives.pareto import front
from tests.helpers import checkpoint_metadata

UP_DOWN = [True, False]


class Study:
    """The trials told so far: trial -> (score, cost); its front is the non-dominated ones."""

    def __init__(self) -> None:
        self.values: dict[int, tuple[float, float]] = {}

    def front(self) -> dict[int, tuple[float, float]]:
        return {n: self.values[n] for n in front(self.values, UP_DOWN)}


def finish(m: FrontCheckpointManager, study: Study, number: int,
           values: tuple[float, float], save: bool = True) -> Path | None:
    target = m.target_for_fold(number, None, last_fold=True)
    assert target is not None
    if save:  # else the trainer saved nothing: there is no checkpoint to keep
        target.mkdir(parents=True)
        (target / "weights.bin").write_bytes(b"w" * 10)
    m.fold_finished(number, lambda: checkpoint_metadata(number))
    m.trial_valued(number, lambda: checkpoint_metadata(number))
    study.values[number] = values  # the study records the trial before the decision
    return m.trial_finished(number, values, lambda: [])


def kept(root: Path) -> list[int]:
    return sorted(e["trial_number"] for e in json.loads((root / "best.json").read_text())["best"])


def test_members_off_the_front_go_even_when_the_trial_that_beat_them_keeps_nothing(
        tmp_path) -> None:
    study = Study()
    m = FrontCheckpointManager(CheckpointLayout(tmp_path, "abcd1234"), True, 2, UP_DOWN,
                               warn=print, front=study.front)
    finish(m, study, 0, (0.9, 0.9))  # best score
    finish(m, study, 1, (0.1, 0.1))  # best cost
    assert kept(tmp_path) == [0, 1]
    finish(m, study, 2, (0.5, 0.5))  # the knee of three: kept first, then the best score
    assert kept(tmp_path) == [0, 2]
    assert not (tmp_path / "trial_1_abcd1234").exists()
    assert finish(m, study, 3, (0.2, 0.05)) is None  # on the front, but neither knee nor best score
    assert finish(m, study, 4, (0.95, 0.92)) is not None  # the best score now: 0 goes
    assert kept(tmp_path) == [2, 4]
    assert not (tmp_path / "trial_0_abcd1234").exists()
    assert finish(m, study, 5, (0.3, 0.01)) is None
    # 6 dominates 2 and 4 but has no checkpoint to keep: they are off the front all the same
    assert finish(m, study, 6, (0.99, 0.5), save=False) is None
    assert kept(tmp_path) == []
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("trial_")]


def test_without_save_only_best_nothing_is_deleted_and_best_json_names_the_front(
        tmp_path) -> None:
    study = Study()
    m = FrontCheckpointManager(CheckpointLayout(tmp_path, "abcd1234"), False, 1, UP_DOWN,
                               warn=print, front=study.front)
    for number, values in enumerate([(0.9, 0.9), (0.1, 0.1), (0.05, 0.5)]):  # 2 is dominated
        finish(m, study, number, values)
    assert kept(tmp_path) == [0, 1]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("trial_")) == [
        "trial_0_abcd1234", "trial_1_abcd1234", "trial_2_abcd1234"]
