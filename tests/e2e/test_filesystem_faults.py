"""What the file system can refuse at set-up: a read-only output dir, a file where a dir
should be, a study file that is a directory. Each is exit 2 with one line naming the
path, never a traceback, and nothing that was there is changed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import fake_config, hposweep


@pytest.fixture
def read_only_outputs(workdir: Path) -> Iterator[Path]:
    """A real read-only file system at outputs/ (root ignores permission bits)."""
    target = workdir / "ro-outputs"
    target.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], capture_output=True)


def assert_one_clear_line(result, *words: str) -> None:
    assert result.exit_code == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    for word in words:
        assert word in lines[0], lines[0]


def test_a_read_only_output_dir_is_exit_2(workdir: Path, read_only_outputs: Path) -> None:
    result = hposweep("run", fake_config(workdir), f"output_dir={read_only_outputs}",
                      "mlflow.enabled=false")
    assert_one_clear_line(result, str(read_only_outputs), "Read-only file system")


def test_a_file_where_the_backbone_dir_should_be_is_exit_2(workdir: Path) -> None:
    (workdir / "outputs" / "hpo").mkdir(parents=True)
    (workdir / "outputs" / "hpo" / "fake").write_text("not a dir")
    result = hposweep("run", fake_config(workdir), "mlflow.enabled=false")
    assert_one_clear_line(result, "outputs/hpo/fake")
    assert (workdir / "outputs" / "hpo" / "fake").read_text() == "not a dir"


def test_a_study_file_that_is_a_directory_is_exit_2(workdir: Path) -> None:
    (workdir / "outputs" / "hpo" / "fake_fake" / "study.db").mkdir(parents=True)
    for command in (["run"], ["status"], ["run", "--dry-run"]):
        result = hposweep(*command, fake_config(workdir), "mlflow.enabled=false")
        assert_one_clear_line(result, "study.db", "is a directory")
    assert os.listdir(workdir / "outputs" / "hpo" / "fake_fake" / "study.db") == []
