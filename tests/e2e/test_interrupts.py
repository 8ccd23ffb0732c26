"""Interrupting `hposweep run --workers K` for real: SIGINT or SIGTERM to the parent alone
(as a script or a scheduler sends it, to a background job whose SIGINT the shell has
ignored), and Ctrl-C typed in a terminal. Each gives one message, from the parent, with
the command the user typed; the workers leave the study resumable; never a traceback."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_workers import trials_in_trainer
from tests.helpers import fake_config, load_study, process_env

BIN = Path(sys.executable).parent
TYPED = ["study.max_trials=4", "k_fold.enabled=false", "--workers", "2"]
CSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def wait_for_two_trials(workdir: Path, proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + 120
    while len(trials_in_trainer(workdir)) < 2:
        assert proc is None or proc.poll() is None, "the sweep ended before its trials ran"
        assert time.monotonic() < deadline, "no 2 trials running"
        time.sleep(0.1)


def check_one_message_and_a_resumable_study(workdir: Path, stderr: str, config: Path) -> None:
    assert "Traceback" not in stderr and "StopIteration" not in stderr
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert errors == [f"error: interrupted; the study is saved. Resume with: hposweep run "
                      f"{config} study.max_trials=4 k_fold.enabled=false --workers 2"], stderr
    states = sorted(t.state.name for t in load_study(workdir / "outputs", "fake_fake").trials)
    assert states == ["FAIL", "FAIL", "WAITING", "WAITING"]  # both retries queued


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_the_parent_alone_stops_the_workers(workdir: Path, signum: int,
                                                        code: int) -> None:
    config = fake_config(workdir)

    def like_a_background_job() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # what `cmd &` in a script does

    parent = subprocess.Popen(
        [str(BIN / "hposweep"), "run", str(config), *TYPED], cwd=workdir,
        env=process_env(HPOSWEEP_TEST_HOLD="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True, preexec_fn=like_a_background_job)
    wait_for_two_trials(workdir, parent)
    os.kill(parent.pid, signum)  # the parent only: the workers are in no group of its
    _, stderr = parent.communicate(timeout=120)
    assert parent.returncode == code, stderr
    check_one_message_and_a_resumable_study(workdir, stderr, config)


def in_a_terminal(workdir: Path, args: list[str], columns: int, n_running: int) -> tuple[int, bytes]:
    """Run ``hposweep ARGS`` as a terminal's foreground job (its session leader), type
    Ctrl-C once ``n_running`` trials are in the trainer; its exit code and the bytes it
    wrote to the terminal."""
    pid, terminal = pty.fork()
    if pid == 0:
        os.chdir(workdir)
        env = process_env(HPOSWEEP_TEST_HOLD="1", TERM="xterm", COLUMNS=str(columns))
        os.execve(str(BIN / "hposweep"), ["hposweep", *args], env)
    output = b""

    def read(until: float) -> bool:
        """What the terminal got until ``until``; False once the other end has closed."""
        nonlocal output
        while time.monotonic() < until:
            if select.select([terminal], [], [], 0.1)[0]:
                try:
                    chunk = os.read(terminal, 1 << 16)
                except OSError:  # EIO: the job has ended and closed the terminal
                    return False
                if not chunk:
                    return False
                output += chunk
        return True

    try:
        deadline = time.monotonic() + 120
        while len(trials_in_trainer(workdir)) < n_running:
            assert time.monotonic() < deadline and read(time.monotonic() + 0.1), output
        read(time.monotonic() + 0.5)  # the display shows the running trials
        os.write(terminal, b"\x03")  # Ctrl-C, typed
        read(time.monotonic() + 120)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(terminal)
    return os.waitstatus_to_exitcode(status), output


def test_ctrl_c_in_a_terminal_gives_one_message(workdir: Path) -> None:
    """The terminal sends SIGINT to its foreground process group: the parent's only."""
    config = fake_config(workdir)
    code, output = in_a_terminal(workdir, ["run", str(config), *TYPED], 100, n_running=2)
    text = CSI.sub(b"", output).decode("utf-8", "replace").replace("\r", "")
    assert code == 130, text
    assert "worker 1:" in text and "worker 2:" in text  # the live view shows each worker
    check_one_message_and_a_resumable_study(workdir, text.replace("^C", ""), config)


def test_after_ctrl_c_the_live_view_shows_the_workers_stopping(workdir: Path) -> None:
    """From the Ctrl-C until they have ended, no worker reads as if it waited for a trial."""
    code, output = in_a_terminal(workdir, ["run", str(fake_config(workdir)), *TYPED], 100,
                                 n_running=2)
    text = CSI.sub(b"", output).decode("utf-8", "replace").replace("\r", "\n")
    assert code == 130, text
    after = text[text.index("^C"):]
    for worker in (1, 2):
        assert f"worker {worker}: stopping: fake trial " in after, after
    assert "waiting for a trial" not in after, after


def test_ctrl_c_never_glues_the_error_onto_a_progress_line(workdir: Path) -> None:
    """A narrow terminal, one process: the live line leaves room for the ``^C`` the
    terminal echoes after it (else the echo wraps onto a line the display does not know,
    and stopping it leaves the bar on screen with the error glued on)."""
    columns = 40
    code, output = in_a_terminal(workdir, ["run", str(fake_config(workdir)),
                                           "study.max_trials=2", "k_fold.enabled=false"],
                                 columns, n_running=1)
    assert code == 130
    shown, _, after = output.partition(b"error:")
    live = [segment.decode("utf-8", "replace").replace("^C", "")
            for segment in re.split(rb"[\r\n]", CSI.sub(b"", shown))
            if "━".encode() in segment]  # the progress bar's lines
    assert live and max(map(len, live)) <= columns - 3, live
    assert after.startswith(b"\x1b[0m interrupted") and re.search(rb"\x1b\[2K(\x1b\[31m)?$", shown)
