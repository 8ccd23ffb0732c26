"""Output nobody reads stops nothing: once the reader of stdout or stderr has gone
(``hposweep run ... | head -3``), what is written there is dropped, and the command
runs to its end with its usual exit code."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO


class Forgiving:
    """A text stream that, when its pipe's reader has gone, points its file descriptor at
    ``/dev/null`` (for every writer in this process: rich, the trainer's ``print``,
    library logs) and drops what was written instead of raising ``BrokenPipeError``."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._forget()
            return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._forget()

    def _forget(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)
        self._stream.flush()  # what the stream still buffers goes to /dev/null now

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def forgiving_output() -> Iterator[None]:
    """stdout and stderr forgive a closed pipe while the block runs, and are flushed
    before it ends (a failed flush at interpreter exit would set exit code 120)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Forgiving(sys.stdout), Forgiving(sys.stderr)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = saved
