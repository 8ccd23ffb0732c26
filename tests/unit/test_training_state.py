"""Mid-trial resume of the built-in trainer: a resumed fold ends exactly where an
uninterrupted one does (CPU, same seed), and a planted pickle is refused."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hposweep.training import state
from hposweep.training.builtin import prepare, train
from tests.unit.test_builtin_trainer import PAGE, context, fill, pages, setup, tmpfs

PARAMS = {"learning_rate": 5e-3, "batch_size": 8, "dropout": 0.1}


class Stop(Exception):
    """Stands for the process dying right after the trainer reported an epoch."""


def test_resume_after_an_epoch_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    cfg, fold = setup("train.epochs=3")
    expected_reports: list = []
    expected = train(PARAMS, fold, context(cfg, reports=expected_reports))

    def stop_after_epoch_1(value: float, step: int) -> None:
        if step == 1:
            raise Stop

    ctx = context(cfg, resume_dir=tmp_path / "resume")
    ctx._report = stop_after_epoch_1
    with pytest.raises(Stop):
        train(PARAMS, fold, ctx)
    assert (tmp_path / "resume" / "latest.json").is_file()

    reports: list = []
    resumed = train(PARAMS, fold, context(cfg, resume_dir=tmp_path / "resume", reports=reports))
    assert resumed == expected
    assert reports == expected_reports, "the retried fold reports its predecessor's epochs too"


STEP_KILL = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {repo!r})
    from pathlib import Path
    from hposweep.training.builtin import train
    from tests.unit.test_builtin_trainer import context, setup
    from tests.unit.test_training_state import PARAMS
    cfg, fold = setup("train.epochs=2", "train.resume_every_steps=2")
    metrics = train(PARAMS, fold, context(cfg, resume_dir=Path(sys.argv[1])))
    print(repr(metrics))
""")


def run_script(script: str, argument: Path, kill_at: str | None) -> subprocess.CompletedProcess[str]:
    """``script`` (``{repo}`` filled in) in a process of its own, armed to be killed at
    ``kill_at``; ``argument`` is its ``sys.argv[1]``."""
    repo = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, **({"HPOSWEEP_KILL_AT": kill_at} if kill_at else {})}
    return subprocess.run([sys.executable, "-c", script.format(repo=repo), str(argument)],
                          capture_output=True, text=True, env=env, timeout=300)


def run_trainer_process(resume_dir: Path, kill_at: str | None) -> subprocess.CompletedProcess[str]:
    return run_script(STEP_KILL, resume_dir, kill_at)


@pytest.mark.slow  # starts a process
def test_kill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """A real SIGKILL part-way through epoch 2 (state saved every 2 steps)."""
    baseline = run_trainer_process(tmp_path / "baseline", None)
    assert baseline.returncode == 0, baseline.stderr
    killed = run_trainer_process(tmp_path / "resume", "state:trial0:epoch1:step2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = run_trainer_process(tmp_path / "resume", None)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == baseline.stdout


class Planted:
    def __reduce__(self):  # what a malicious checkpoint does on unpickling
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp") / f"hposweep-pwned-{os.getpid()}"


def test_a_planted_pickle_in_the_resume_dir_is_refused_never_executed(tmp_path: Path) -> None:
    cfg, fold = setup()
    resume = tmp_path / "resume"
    (resume / "state-evil").mkdir(parents=True)
    (resume / "latest.json").write_text('{"state": "state-evil"}')
    (resume / "state-evil" / "trainer.pt").write_bytes(pickle.dumps(Planted()))
    warnings: list = []
    metrics = train(PARAMS, fold, context(cfg, resume_dir=resume, warnings=warnings))
    assert not MARKER.exists(), "the pickle's payload ran"
    assert "refused" in warnings[0]
    assert metrics == train(PARAMS, fold, context(cfg)), "it trained from the start instead"


def test_a_symlinked_trial_dir_is_never_used_as_a_resume_dir(tmp_path: Path) -> None:
    """A link where a trial's dir should be: not listed, not read, written or deleted."""
    from hposweep.checkpoints.layout import CheckpointLayout
    from hposweep.checkpoints.resume import TrialResume, resume_roots

    victim = tmp_path / "victim"
    (victim / "resume" / "fold0").mkdir(parents=True)
    (victim / "resume" / "fold0" / "latest.json").write_text("{}")
    (victim / "resume" / "folds.json").write_text('{"completed": {"1": {"score": 9.0}}}')
    root = tmp_path / "hpo" / "bert"
    root.mkdir(parents=True)
    (root / "trial_3_abcd1234").symlink_to(victim)
    layout = CheckpointLayout(root, "abcd1234")
    warnings: list[str] = []

    assert resume_roots(layout) == []
    resume = TrialResume(layout, 3, warn=warnings.append)
    assert resume.completed_folds() == {}, "fold results read through a link"
    assert resume.fold_dir(0) is None, "the trainer would save and delete state through it"
    resume.record_fold(0, {"score": 1.0})
    resume.remove()
    assert (victim / "resume" / "fold0" / "latest.json").read_text() == "{}"
    assert "9.0" in (victim / "resume" / "folds.json").read_text()
    assert len(warnings) == 1 and "trial_3_abcd1234" in warnings[0], warnings


@pytest.mark.parametrize("fills_on", ["model.safetensors", "trainer.pt"])
def test_a_disk_that_fills_up_while_saving_the_state_is_one_warning(tmp_path: Path,
                                                                    fills_on: str) -> None:
    """A real tmpfs with room for one saved state (after epoch 1) and part of the next one,
    which fills up in the file named: training goes on exactly as without resume state, one
    warning for the trial however many saves fail, and the first state stays whole."""
    cfg, fold = setup("train.epochs=4")
    probe = tmp_path / "probe"
    train(PARAMS, fold, context(setup("train.epochs=2")[0], resume_dir=probe))
    (saved,) = probe.glob("state-*")
    model, trainer = (pages((saved / name).stat().st_size)
                      for name in ("model.safetensors", "trainer.pt"))
    room = model // 2 if fills_on == "model.safetensors" else model + 2 * PAGE
    warnings: list[str] = []
    with tmpfs(tmp_path / "disk", model + trainer + PAGE + room) as disk:
        metrics = train(PARAMS, fold, context(cfg, resume_dir=disk / "resume", warnings=warnings))
        left = sorted(p.name for p in (disk / "resume").iterdir())
        s = prepare(PARAMS, fold, context(cfg))
        restored = state.load(disk / "resume", s.model, s.optimizer, s.scheduler,
                              s.loader.generator)
    assert metrics == train(PARAMS, fold, context(cfg))
    assert len(warnings) == 1 and "resume state not saved" in warnings[0], warnings
    assert ("No space left on device" if fills_on == "model.safetensors" else "trainer.pt"
            ) in warnings[0]
    assert len(left) == 2 and left[0] == "latest.json" and left[1].startswith("state-"), left
    assert restored is not None and restored[0].epoch == 1, "the state after epoch 1 loads"


def test_a_full_disk_while_recording_a_finished_fold_is_a_warning(tmp_path: Path) -> None:
    from hposweep.checkpoints.layout import CheckpointLayout
    from hposweep.checkpoints.resume import TrialResume

    with tmpfs(tmp_path / "bert", 64 * 1024) as root:
        layout = CheckpointLayout(root, "abcd1234")
        warnings: list[str] = []
        resume = TrialResume(layout, 0, warn=warnings.append)
        (resume.dir / "fold0").mkdir(parents=True)
        fill(root)
        resume.record_fold(0, {"score": 0.5})
        left = sorted(p.name for p in resume.dir.iterdir())
        (root / "filler").unlink()  # room again: the next fold is recorded, fold 0 is not
        resume.record_fold(1, {"score": 0.7})
        retry = TrialResume(layout, 0, warn=warnings.append).completed_folds()
    assert len(warnings) == 1 and "No space left on device" in warnings[0], warnings
    assert "fold 0" in warnings[0]
    assert left == [], "neither a half-written folds.json nor the fold's useless state is left"
    assert retry == {1: {"score": 0.7}}, "as the warning says, a retry trains fold 0 again"


def saved_state(tmp_path: Path, cfg, fold) -> Path:
    """A real resume state: the fold stopped after its first epoch."""

    def stop(value: float, step: int) -> None:
        raise Stop

    ctx = context(cfg, resume_dir=tmp_path / "resume")
    ctx._report = stop
    with pytest.raises(Stop):
        train(PARAMS, fold, ctx)
    return tmp_path / "resume"


def trainer_file(resume: Path) -> Path:
    return resume / json_pointer(resume) / "trainer.pt"


def json_pointer(resume: Path) -> str:
    import json

    return json.loads((resume / state.POINTER).read_text())["state"]


def test_a_state_saved_on_another_gpu_loads_on_this_host(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``trainer.pt`` as a run on ``cuda:1`` writes it (torch records each tensor's device
    in the file): read onto the CPU, it resumes here instead of being refused."""
    import torch

    cfg, fold = setup("train.epochs=2")
    with monkeypatch.context() as patched:
        patched.setattr(torch.serialization, "location_tag", lambda storage: "cuda:1")
        resume = saved_state(tmp_path, cfg, fold)
    with pytest.raises(RuntimeError, match="CUDA"):  # what a plain torch.load does here
        torch.load(trainer_file(resume), weights_only=True)
    s = prepare(PARAMS, fold, context(cfg))
    restored = state.load(resume, s.model, s.optimizer, s.scheduler, s.generator)
    assert restored is not None and restored.progress.epoch == 1


def test_rng_state_that_cannot_be_restored_refuses_the_state_and_the_fold_starts_over(
        tmp_path: Path) -> None:
    """An RNG state this host cannot take (as every visible GPU's, resumed with fewer GPUs
    visible) is refused with the rest of the state: the fold trains from the start and ends
    as a run that never had a state, instead of the trial failing."""
    import torch

    cfg, fold = setup("train.epochs=2")
    expected = train(PARAMS, fold, context(cfg))
    resume = saved_state(tmp_path, cfg, fold)
    saved = torch.load(trainer_file(resume), weights_only=True)
    saved["torch_rng"] = torch.zeros(3, dtype=torch.uint8)
    torch.save(saved, trainer_file(resume))
    warnings: list[str] = []
    assert train(PARAMS, fold, context(cfg, resume_dir=resume, warnings=warnings)) == expected
    assert len(warnings) == 1 and "refused" in warnings[0]


def test_only_the_training_devices_rng_is_saved(tmp_path: Path) -> None:
    import torch

    cfg, fold = setup("train.epochs=2")
    saved = torch.load(trainer_file(saved_state(tmp_path, cfg, fold)), weights_only=True)
    assert "cuda_rng" not in saved and saved["device_rng"].numel() == 0  # trained on the CPU
