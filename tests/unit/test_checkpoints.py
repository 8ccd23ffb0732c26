"""The best-only rule, layout, keep_best, and crash safety (real SIGKILLs)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hposweep.checkpoints import CheckpointLayout, CheckpointManager

WARNINGS: list[str] = []


@pytest.fixture(autouse=True)
def _no_warnings_from_other_tests() -> None:
    WARNINGS.clear()


def manager(root: Path, save_only_best: bool = True, keep_best: int = 1,
            maximize: bool = True, run_id: str = "abcd1234") -> CheckpointManager:
    return CheckpointManager(CheckpointLayout(root, run_id), save_only_best, keep_best,
                             maximize, warn=WARNINGS.append)


def finish_trial(m: CheckpointManager, number: int, value: float, folds: int = 2,
                 others: list[float] | None = None) -> Path | None:
    """What the sweep does for one k-fold trial: each fold saves where told, then decide."""
    for fold in range(folds):
        target = m.target_for_fold(number, fold, last_fold=fold == folds - 1)
        if target is not None:
            target.mkdir(parents=True)
            (target / "model.safetensors").write_bytes(b"w" * 100)
        m.fold_finished(number, {"trial_number": number, "fold": fold, "objective_value": value})
    m.trial_valued(number, {"trial_number": number, "objective_value": value})
    return m.trial_finished(number, value, lambda: list(others or []))


def listing(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def test_layout_names_follow_the_spec(tmp_path: Path) -> None:
    layout = CheckpointLayout(tmp_path / "hpo" / "bert", "0123abcd")
    assert layout.checkpoint_dir(3, None) == tmp_path / "hpo/bert/trial_3_0123abcd/checkpoint"
    assert layout.checkpoint_dir(3, 4) == tmp_path / "hpo/bert/trial_3_0123abcd_fold4/checkpoint"
    assert layout.staging_dir(3, 4).name.startswith(".tmp-trial_3_0123abcd_fold4-")


def test_a_run_id_from_a_tampered_study_cannot_steer_paths(tmp_path: Path) -> None:
    from hposweep.errors import UserError

    with pytest.raises(UserError, match="not a sweep id"):
        CheckpointLayout(tmp_path, "../../etc")


def test_best_json_entries_pointing_outside_are_never_deleted(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    (victim / "checkpoint").mkdir(parents=True)
    root = tmp_path / "hpo" / "bert"
    root.mkdir(parents=True)
    hostile = {"run_id": "abcd1234", "trial_number": 9, "value": 0.0,
               "checkpoint": "../../victim/checkpoint"}
    (root / "best.json").write_text(json.dumps({"best": [hostile]}))
    m = manager(root)
    finish_trial(m, 0, 0.5)
    assert (victim / "checkpoint").is_dir(), "a path from best.json left the sweep's dir"
    assert any("points outside" in w for w in WARNINGS)


def test_only_the_best_trial_keeps_its_last_fold(tmp_path: Path) -> None:
    m = manager(tmp_path)
    assert finish_trial(m, 0, 0.5) == tmp_path / "trial_0_abcd1234_fold1" / "checkpoint"
    assert finish_trial(m, 1, 0.4, others=[0.5]) is None
    assert listing(tmp_path) == ["trial_0_abcd1234_fold1"]
    assert finish_trial(m, 2, 0.7, others=[0.5, 0.4]) is not None
    assert listing(tmp_path) == ["trial_2_abcd1234_fold1"], "the old best is pruned"
    best = json.loads((tmp_path / "best.json").read_text())["best"]
    assert [(e["trial_number"], e["value"]) for e in best] == [(2, 0.7)]
    meta = json.loads((tmp_path / "trial_2_abcd1234_fold1/checkpoint/hposweep.json").read_text())
    assert meta["trial_number"] == 2


def test_a_tie_is_not_better(tmp_path: Path) -> None:
    m = manager(tmp_path)
    finish_trial(m, 0, 0.5)
    assert finish_trial(m, 1, 0.5, others=[0.5]) is None


def test_minimize_and_single_training_names(tmp_path: Path) -> None:
    m = manager(tmp_path, maximize=False)
    assert finish_trial(m, 0, 2.0, folds=1) is not None
    finish_trial(m, 1, 1.0, folds=1, others=[2.0])
    assert listing(tmp_path) == ["trial_1_abcd1234_fold0"]


def test_best_is_judged_against_the_whole_study(tmp_path: Path) -> None:
    """Another process' finished trial (only in the study) beats this one: nothing kept."""
    m = manager(tmp_path)
    assert finish_trial(m, 5, 0.6, others=[0.9]) is None
    assert listing(tmp_path) == []


def test_sweeps_sharing_a_backbone_dir_never_touch_each_others_checkpoints(tmp_path: Path) -> None:
    """E.g. after --fresh, or two studies of one backbone: a new sweep starts from scratch."""
    old = manager(tmp_path, run_id="0000aaaa")
    finish_trial(old, 0, 0.9)
    new = manager(tmp_path, run_id="1111bbbb")
    assert finish_trial(new, 0, 0.2) is not None, "judged against its own study only"
    finish_trial(new, 1, 0.3, others=[0.2])
    assert listing(tmp_path) == ["trial_0_0000aaaa_fold1", "trial_1_1111bbbb_fold1"]
    assert [e.trial_number for e in old.entries()] == [0]
    assert [e.trial_number for e in new.entries()] == [1]


def test_keep_best_two(tmp_path: Path) -> None:
    m = manager(tmp_path, keep_best=2)
    finish_trial(m, 0, 0.1)
    finish_trial(m, 1, 0.2, others=[0.1])
    finish_trial(m, 2, 0.3, others=[0.1, 0.2])
    assert listing(tmp_path) == ["trial_1_abcd1234_fold1", "trial_2_abcd1234_fold1"]


def test_save_all_keeps_every_fold(tmp_path: Path) -> None:
    m = manager(tmp_path, save_only_best=False)
    finish_trial(m, 0, 0.5)
    finish_trial(m, 1, 0.4, others=[0.5])
    assert listing(tmp_path) == ["trial_0_abcd1234_fold0", "trial_0_abcd1234_fold1",
                                 "trial_1_abcd1234_fold0", "trial_1_abcd1234_fold1"]
    assert json.loads((tmp_path / "best.json").read_text())["best"][0]["trial_number"] == 0
    assert m.checkpoint_of(0) == tmp_path / "trial_0_abcd1234_fold1" / "checkpoint"


def test_a_trainer_that_saved_nothing_keeps_nothing_and_warns(tmp_path: Path) -> None:
    m = manager(tmp_path)
    m.target_for_fold(0, None, last_fold=True)
    m.trial_valued(0, {})
    assert m.trial_finished(0, 0.9, list) is None
    assert listing(tmp_path) == [] and "saved nothing" in WARNINGS[-1]


def test_a_failed_trial_leaves_nothing(tmp_path: Path) -> None:
    m = manager(tmp_path)
    target = m.target_for_fold(0, 1, last_fold=True)
    assert target is not None
    target.mkdir(parents=True)
    m.discard(0)
    assert listing(tmp_path) == []


def test_unwritable_root_is_a_warning_and_the_old_best_stays(tmp_path: Path) -> None:
    m = manager(tmp_path)
    finish_trial(m, 0, 0.5)
    (tmp_path / "best.json").unlink()
    (tmp_path / "best.json").mkdir()  # replacing best.json now fails for real
    assert finish_trial(m, 1, 0.9, others=[0.5]) is None
    assert "trial_0_abcd1234_fold1" in listing(tmp_path)
    assert not any(name.startswith(("trial_1", ".tmp-")) for name in listing(tmp_path))
    assert any("checkpoint not kept" in w for w in WARNINGS)


CRASH_SCRIPT = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from unit.test_checkpoints import finish_trial, manager
    root = Path(sys.argv[1])
    m = manager(root)
    finish_trial(m, 0, 0.5)
    os.environ["HPOSWEEP_KILL_AT"] = sys.argv[2]
    finish_trial(m, 1, 0.9, others=[0.5])
    print("not killed")
""")


@pytest.mark.parametrize("point", ["checkpoint:staged", "checkpoint:renamed",
                                   "checkpoint:recorded"])
def test_kill_at_any_point_leaves_a_complete_best(tmp_path: Path, point: str) -> None:
    root = tmp_path / "bert"
    script = CRASH_SCRIPT.format(tests=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-c", script, str(root), point],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    best = json.loads((root / "best.json").read_text())["best"]
    assert best, "best.json still names a best checkpoint"
    for entry in best:
        checkpoint = root / entry["checkpoint"]
        assert (checkpoint / "model.safetensors").stat().st_size == 100
        assert (checkpoint / "hposweep.json").is_file()
    for final in root.glob("trial_*"):
        assert (final / "checkpoint" / "hposweep.json").is_file(), f"{final} is half-written"


def test_recover_cleans_what_a_killed_process_left(tmp_path: Path) -> None:
    m = manager(tmp_path)
    finish_trial(m, 0, 0.5)
    orphan = m.target_for_fold(1, 1, last_fold=True)  # trial 1 died while saving
    assert orphan is not None
    orphan.mkdir(parents=True)
    live = m.target_for_fold(2, 1, last_fold=True)  # trial 2 is running elsewhere
    dead_tmp = tmp_path / "best.json.tmp-999999999"
    dead_tmp.write_text("{")
    fresh = manager(tmp_path)
    fresh.recover({0: ("COMPLETE", 0.5), 1: ("FAIL", None), 2: ("RUNNING", None)}, lambda n: [])
    assert listing(tmp_path) == [live.parent.name, "trial_0_abcd1234_fold1"]
    assert not dead_tmp.exists()
