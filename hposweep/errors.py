"""Exceptions that carry a user-facing message and an exit code."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: the CLI prints the message (no traceback) and exits 2."""

    exit_code = 2


class ConfigError(UserError):
    """The config file, an override, or a file it names is wrong."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message: library messages append debug detail."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
