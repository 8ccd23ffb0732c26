"""Text helpers shared by the live output and the reports: how values, params and counts
read, and a rich Console that prints user strings literally."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def fmt_value(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def fmt_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt_value(v)}" for k, v in params.items())


def progress(finished: int, max_trials: int) -> str:
    """``3/10 (7 to go)``; past max_trials (raised for a run, not in this config) plainly."""
    if finished >= max_trials:
        return f"{finished} (max_trials {max_trials}: nothing to run)"
    return f"{finished}/{max_trials} ({max_trials - finished} to go)"


def trials(n: int) -> str:
    return f"{n} trial" if n == 1 else f"{n} trials"


def fmt_duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def make_console(**options: Any) -> Console:
    """A rich Console that leaves text alone: no highlighting, no ``:emoji:`` codes."""
    return Console(highlight=False, emoji=False, **options)


def text(*lines: str | Text) -> Text:
    """Lines as one literal Text: user strings in them are never read as markup."""
    return Text("\n").join(Text(line) if isinstance(line, str) else line for line in lines)


def named(backbone: str, rest: str) -> Text:
    """``backbone`` in bold, then ``rest``, both literal."""
    return Text.assemble((backbone, "bold"), rest)
