"""The ``--workers`` parent's live view: what each worker line says, before and after a
Ctrl-C reached the workers; and what a worker's own console is."""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console

from hposweep.console.reports import SweepConsole
from hposweep.workers.view import WorkersView


def send(view: WorkersView, worker: int, event: str, **args: Any) -> None:
    view.handle(worker, json.dumps({"event": event, **args}))


def worker_lines(view: WorkersView) -> list[str]:
    screen = Console(width=100, record=True, file=io.StringIO())
    screen.print(view)
    return [line.strip() for line in screen.export_text().splitlines()
            if line.strip().startswith("worker ")]


def test_after_a_signal_each_running_worker_is_shown_stopping() -> None:
    view = WorkersView(SweepConsole("json"), 4)
    for worker in range(3):
        send(view, worker, "sweep_started", backbone="bb", study_name="s", resumed=False,
             done=0, total=9, maximize=True, front=False)
    send(view, 0, "trial_started", number=0, params={"x": 0.5}, retried_from=None)
    send(view, 0, "progress", number=0, fold=0, n_folds=2, epoch=1, value=0.25)
    send(view, 2, "trial_started", number=1, params={"x": 0.5}, retried_from=None)
    view.worker_ended(3, 0)
    assert worker_lines(view) == ["worker 1: bb trial 0 fold 1/2 epoch 2: 0.2500",
                                  "worker 2: bb: waiting for a trial",
                                  "worker 3: bb trial 1", "worker 4: ended"]
    view.stopping()
    send(view, 2, "trial_finished", number=1, state="FAIL", value=None,
         reason="interrupted", kept=None)
    assert worker_lines(view) == ["worker 1: stopping: bb trial 0 fold 1/2 epoch 2: 0.2500",
                                  "worker 2: stopping", "worker 3: stopping",
                                  "worker 4: ended"]
    view.worker_ended(0, 130)
    assert worker_lines(view)[0] == "worker 1: ended (exit code 130)"


def test_a_workers_console_has_the_live_events_only() -> None:
    """The worker's event console sends what happens as a sweep runs; the tables and the
    reading commands are the terminal's."""
    from hposweep.console.live import LiveConsole
    from hposweep.workers.events import EventConsole

    assert issubclass(EventConsole, LiveConsole) and not issubclass(EventConsole, SweepConsole)
    for report in ("study_status", "best", "compare", "dry_run"):
        assert hasattr(SweepConsole, report) and not hasattr(EventConsole, report)
