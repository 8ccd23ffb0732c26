"""The commands the README and the configs' comments show work when pasted into a shell:
an override with brackets is quoted whole (unquoted, a shell splits it at a space or, in
zsh, reads it as a glob)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def documented_commands() -> list[tuple[str, str]]:
    """(file, command) for each line of the README or a config's comments that is a
    ``hposweep`` command."""
    commands = []
    for path in [REPO / "README.md", *sorted((REPO / "configs").glob("*.yaml"))]:
        for line in path.read_text().splitlines():
            text = line.lstrip("#").strip() if path.suffix == ".yaml" else line.strip()
            if text.startswith("hposweep "):
                commands.append((path.name, text))
    return commands


def test_every_documented_override_with_brackets_is_quoted() -> None:
    commands = documented_commands()
    assert any(name == "ner.yaml" for name, _ in commands), "the configs' comments are read"
    for name, command in commands:
        unquoted = re.sub(r"'[^']*'|\"[^\"]*\"", "", command).split(" #")[0]
        assert "[" not in unquoted, f"{name}: quote the whole override: {command}"
