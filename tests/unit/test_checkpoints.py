"""The best-only rule, layout, keep_best, and crash safety (real SIGKILLs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hposweep.checkpoints.files import remove_tree
from hposweep.checkpoints.layout import CheckpointLayout
from hposweep.checkpoints.manager import CheckpointManager
from tests.helpers import checkpoint_metadata

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
        m.fold_finished(number, lambda fold=fold: checkpoint_metadata(number, fold, value))
    m.trial_valued(number, lambda: checkpoint_metadata(number, None, value))
    return m.trial_finished(number, value, lambda: list(others or []))


def files(top: Path) -> list[Path]:
    """Every file below ``top``, not looking into symlinked dirs."""
    return [Path(d) / name for d, _, names in os.walk(top) for name in names]


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


OTHER_RUN = "0000aaaa"


def plant_victims(tmp_path: Path) -> Path:
    """Files outside the sweep dir ``tmp_path/hpo/bert`` that nothing may delete: a dir that
    looks like a sealed checkpoint of trial 5, and another backbone's dir beside ours."""
    victim = tmp_path / "victim"
    (victim / "checkpoint").mkdir(parents=True)
    (victim / "checkpoint" / "model.safetensors").write_bytes(b"v" * 100)
    (victim / "checkpoint" / "hposweep.json").write_text(json.dumps({"trial_number": 5}))
    (tmp_path / "hpo" / "other").mkdir(parents=True)
    (tmp_path / "hpo" / "other" / "precious.txt").write_text("not yours")
    return victim


def entry(checkpoint: str, trial_number: int = 5, value: float = 0.1) -> dict:
    return {"run_id": "abcd1234", "trial_number": trial_number, "value": value,
            "checkpoint": checkpoint}


def add_entries(root: Path, *entries: dict) -> None:
    best = json.loads((root / "best.json").read_text())
    (root / "best.json").write_text(json.dumps({"best": best["best"] + list(entries)}))


def recorded(root: Path) -> list[tuple[int, str]]:
    return [(e["trial_number"], e["checkpoint"])
            for e in json.loads((root / "best.json").read_text())["best"]]


def tamper_dot(root: Path, victim: Path) -> str:
    add_entries(root, entry("."))
    return "'.'"


def tamper_dotdot(root: Path, victim: Path) -> str:
    add_entries(root, entry(".."))
    return "'..'"


def tamper_escape(root: Path, victim: Path) -> str:
    add_entries(root, entry("../../victim/checkpoint"))
    return "'../../victim/checkpoint'"


def tamper_trial_dir_without_checkpoint(root: Path, victim: Path) -> str:
    (root / "trial_5_abcd1234").mkdir()
    (root / "trial_5_abcd1234" / "notes.txt").write_text("a trial dir, not a checkpoint")
    add_entries(root, entry("trial_5_abcd1234"))
    return "'trial_5_abcd1234'"


def tamper_absolute(root: Path, victim: Path) -> str:
    add_entries(root, entry(str(victim / "checkpoint")))
    return repr(str(victim / "checkpoint"))


def tamper_other_runs_checkpoint(root: Path, victim: Path) -> str:
    other = root / f"trial_5_{OTHER_RUN}_fold1" / "checkpoint"
    other.mkdir(parents=True)
    (other / "model.safetensors").write_bytes(b"o" * 100)
    add_entries(root, entry(f"trial_5_{OTHER_RUN}_fold1/checkpoint"))
    return f"'trial_5_{OTHER_RUN}_fold1/checkpoint'"


def tamper_wrong_trial_number(root: Path, victim: Path) -> str:
    """trial 5's entry naming trial 0's checkpoint, with a value no trial can beat."""
    add_entries(root, entry("trial_0_abcd1234_fold1/checkpoint", value=0.95))
    return "'trial_0_abcd1234_fold1/checkpoint'"


def tamper_symlinked_checkpoint(root: Path, victim: Path) -> str:
    (root / "trial_5_abcd1234_fold1").mkdir()
    (root / "trial_5_abcd1234_fold1" / "checkpoint").symlink_to(victim / "checkpoint")
    add_entries(root, entry("trial_5_abcd1234_fold1/checkpoint"))
    return "trial_5_abcd1234_fold1/checkpoint"


def tamper_symlinked_trial_dir(root: Path, victim: Path) -> str:
    (root / "trial_5_abcd1234_fold1").symlink_to(victim)
    add_entries(root, entry("trial_5_abcd1234_fold1/checkpoint"))
    return "trial_5_abcd1234_fold1"


def tamper_symlinked_trial_dir_unnamed(root: Path, victim: Path) -> str:
    """Not in best.json: only the scan for sealed checkpoints best.json misses finds it."""
    (root / "trial_5_abcd1234_fold1").symlink_to(victim)
    return "trial_5_abcd1234_fold1"


def tamper_symlinked_staging_dir(root: Path, victim: Path) -> str:
    (root / ".tmp-trial_5_abcd1234_fold1-0badf00d").symlink_to(victim)
    return ".tmp-trial_5_abcd1234_fold1-0badf00d"


@pytest.mark.parametrize("tamper", [
    tamper_dot, tamper_dotdot, tamper_escape, tamper_trial_dir_without_checkpoint,
    tamper_absolute, tamper_other_runs_checkpoint, tamper_wrong_trial_number,
    tamper_symlinked_checkpoint, tamper_symlinked_trial_dir, tamper_symlinked_trial_dir_unnamed,
    tamper_symlinked_staging_dir,
], ids=lambda f: f.__name__.removeprefix("tamper_"))
@pytest.mark.parametrize("value_5", [0.1, 0.7], ids=["worse", "better"])
def test_a_tampered_sweep_dir_never_makes_a_deletion_escape(tmp_path: Path, tamper,
                                                            value_5: float) -> None:
    """Recovering (trial 5 COMPLETE, as the planted dirs claim, worse or better than the
    best) and then pruning for a new best: nothing planted is recorded or kept, nothing
    outside the sweep dir is gone, and a warning names what was ignored."""
    victim = plant_victims(tmp_path)
    root = tmp_path / "hpo" / "bert"
    finish_trial(manager(root), 0, 0.5)
    bad = tamper(root, victim)
    outside = {p: p.read_bytes() for p in files(tmp_path) if not p.is_relative_to(root)}
    old_best = root / "trial_0_abcd1234_fold1"  # pruned by the new best, as it should be
    inside = [p for p in files(root) if not p.is_relative_to(old_best) and p.name != "best.json"]

    fresh = manager(root)
    fresh.recover({0: ("COMPLETE", 0.5), 5: ("COMPLETE", value_5)}, lambda n: [])
    assert recorded(root) == [(0, "trial_0_abcd1234_fold1/checkpoint")], "planted entry kept"
    assert finish_trial(fresh, 1, 0.9, others=[0.5]) == root / "trial_1_abcd1234_fold1/checkpoint"

    assert {p: p.read_bytes() for p in outside if p.exists()} == outside, "deleted outside"
    assert all(p.exists() for p in inside), "a file of the sweep dir not named by best.json"
    assert recorded(root) == [(1, "trial_1_abcd1234_fold1/checkpoint")]
    assert (root / "trial_1_abcd1234_fold1/checkpoint/model.safetensors").is_file()
    assert any(bad in w for w in WARNINGS), WARNINGS


def test_a_checkpoint_is_never_moved_into_a_symlinked_trial_dir(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "hpo" / "bert"
    root.mkdir(parents=True)
    (root / "trial_0_abcd1234_fold1").symlink_to(elsewhere)
    assert finish_trial(manager(root), 0, 0.5) is None
    assert list(elsewhere.iterdir()) == [] and not list(root.glob(".tmp-*"))
    assert any("ignoring trial_0_abcd1234_fold1: it is a symlink" in w for w in WARNINGS)


def test_remove_tree_deletes_links_inside_never_their_targets(tmp_path: Path) -> None:
    """What remove_tree relies on: rmtree by fd unlinks a link to a dir, never enters it."""
    victim = plant_victims(tmp_path)
    root = tmp_path / "hpo" / "bert"
    doomed = root / "trial_1_abcd1234" / "checkpoint"
    doomed.mkdir(parents=True)
    (doomed / "weights").symlink_to(victim / "checkpoint")
    (doomed / "deep").mkdir()
    (doomed / "deep" / "up").symlink_to(tmp_path / "hpo")
    remove_tree(root / "trial_1_abcd1234", root, WARNINGS.append)
    assert not (root / "trial_1_abcd1234").exists() and WARNINGS == []
    assert (victim / "checkpoint" / "model.safetensors").is_file()
    assert (tmp_path / "hpo" / "other" / "precious.txt").is_file()


@pytest.mark.parametrize("target", [".", "..", "../other", "/tmp", "link/checkpoint", "link"])
def test_remove_tree_refuses_what_is_not_a_real_dir_below_the_root(tmp_path: Path,
                                                                   target: str) -> None:
    victim = plant_victims(tmp_path)
    root = tmp_path / "hpo" / "bert"
    root.mkdir()
    (root / "link").symlink_to(victim)
    remove_tree(root / target, root, WARNINGS.append)
    assert (victim / "checkpoint" / "model.safetensors").is_file() and (root / "link").is_symlink()
    assert (tmp_path / "hpo" / "other" / "precious.txt").is_file()
    assert len(WARNINGS) == 1 and WARNINGS[0].startswith(f"not deleting {root / target}")


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


def test_save_all_names_the_last_fold_also_past_ten_folds(tmp_path: Path) -> None:
    m = manager(tmp_path, save_only_best=False)
    finish_trial(m, 0, 0.5, folds=11)
    assert m.checkpoint_of(0) == tmp_path / "trial_0_abcd1234_fold10" / "checkpoint"


def test_a_trainer_that_saved_nothing_keeps_nothing_and_warns(tmp_path: Path) -> None:
    m = manager(tmp_path)
    m.target_for_fold(0, None, last_fold=True)
    m.trial_valued(0, lambda: checkpoint_metadata(0))
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
@pytest.mark.slow  # starts a process
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
