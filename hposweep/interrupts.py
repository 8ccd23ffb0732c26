"""Ctrl-C and SIGTERM as exceptions in the main thread, delivered until the sweep has them.

Python runs a signal handler between two bytecodes of the main thread, wherever that is. When
that is a finalizer or a garbage-collector callback (SQLAlchemy registers some), the exception
the handler raises is printed as "Exception ignored in ..." and dropped, and the sweep would go
on as if it had never been interrupted. So until the sweep says it has the interrupt
(:func:`received`, called where it first catches one), a watchdog thread delivers the signal
again, and leaving :func:`interruptible` raises it if it is still pending; Python's report of
the dropped one (a traceback) is not printed. Once received, a second signal exits at once.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

REDELIVER_SECONDS = 2.0  # how often a dropped interrupt is delivered again


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so the sweep unwinds like on Ctrl-C."""


# Signal handlers are per process, so is this state.
_pending: list[int] = []  # the first signal of this interruptible() block, if any
_received = threading.Event()
_left = threading.Event()


def received() -> None:
    """The sweep has caught the interrupt: stop delivering it; the next signal exits at once."""
    if threading.current_thread() is not threading.main_thread() or _received.is_set():
        return
    _received.set()
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is _handler:
            signal.signal(signum, signal.SIG_DFL)


def behind(exc: BaseException, handled: BaseException | None) -> KeyboardInterrupt | None:
    """The interrupt ``exc`` is, or that it was raised while handling, short of ``handled``
    (what was already being handled when the call began: not a new interrupt). One that
    lands inside a library's clean-up can come out as that clean-up's own error (MLflow on
    SQLite: "database is locked"), and must still unwind the sweep as an interrupt."""
    seen: BaseException | None = exc
    while seen is not None and seen is not handled:
        if isinstance(seen, KeyboardInterrupt):
            return seen
        seen = seen.__context__
    return None


def release_frames(exc: BaseException) -> None:
    """Drop the locals of the finished frames ``exc``'s traceback (and those of what it was
    raised while handling) holds. An interrupt that lands inside a database write keeps that
    write's connection alive through them while the sweep unwinds, and on SQLite its lock with
    it: every later write, such as ending the runs, would wait on it and fail."""
    import traceback

    seen: BaseException | None = exc
    while seen is not None:
        traceback.clear_frames(seen.__traceback__)
        seen = seen.__context__


def _exception(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _handler(signum: int, frame: object) -> None:
    if not _pending:
        _pending.append(signum)
        threading.Thread(target=_redeliver, name="hposweep-interrupt", daemon=True).start()
    raise _exception(_pending[0])


def _redeliver() -> None:
    while not _received.wait(REDELIVER_SECONDS) and not _left.is_set():
        if not _main_thread_handles_one():
            _thread.interrupt_main(_pending[0])  # runs _handler in the main thread, as a signal does


def _main_thread_handles_one() -> bool:
    """Is the interrupt unwinding the main thread (an ``except`` or ``finally`` of a frame that
    has not called :func:`received`, e.g. a slow clean-up under load)? Then it was not dropped,
    and delivering it again would cut that clean-up short."""
    current = sys._current_exceptions().get(threading.main_thread().ident)
    exc = current[1] if isinstance(current, tuple) else current  # a tuple before Python 3.12
    return isinstance(exc, KeyboardInterrupt)


def _unraisable(hook: object) -> object:
    """sys.unraisablehook that keeps quiet about our own dropped interrupts: they come again."""

    def quiet(report: object) -> None:
        if not isinstance(getattr(report, "exc_value", None), KeyboardInterrupt):
            hook(report)  # type: ignore[operator]

    return quiet


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C / SIGTERM unwind the sweep (trial FAIL, runs KILLED); a second one exits at once."""
    _pending.clear()
    _received.clear()
    _left.clear()
    previous = signal.signal(signal.SIGINT, _handler), signal.signal(signal.SIGTERM, _handler)
    previous_hook, sys.unraisablehook = sys.unraisablehook, _unraisable(sys.unraisablehook)
    try:
        yield
    finally:
        _left.set()
        sys.unraisablehook = previous_hook
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
    if _pending and not _received.is_set():  # dropped where it landed, and the sweep ended
        raise _exception(_pending[0])
