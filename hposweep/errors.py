"""Exceptions that carry a user-facing message and an exit code."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class UserError(Exception):
    """Bad input from the user: the CLI prints the message (no traceback) and exits 2."""

    exit_code = 2


class NothingCompleted(UserError):
    """A study has no completed trial to use: exit 1, as for ``run`` and ``best`` (CI
    must notice), never 2: the input was right, the study is not there yet."""

    exit_code = 1


class DeviceFailed(UserError):
    """A device error that leaves this process unable to train (a CUDA device-side assert,
    an illegal memory access): the trial is queued again for a fresh process and this one
    stops, exit 1, instead of failing every later trial."""

    exit_code = 1


class ConfigError(UserError):
    """The config file, an override, or a file it names is wrong."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message: library messages append debug detail."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


class InternalError(Exception):
    """A bug of hposweep's surfaced through a trainer's call (a ``ctx`` callback failed):
    never counted as the trial's failure; it propagates to the CLI with its traceback."""


@contextlib.contextmanager
def reported_os_errors(what: str) -> Iterator[None]:
    """Turn a file-system error (read-only dir, a file where a dir should be, a name too
    long, ...) into one line for the user: exit 2, no traceback."""
    try:
        yield
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        raise UserError(f"{what}:{where}: {exc.strerror or first_line(exc)}") from None
