"""The trial loop of one process: admit a trial only while the study needs one, run it,
record it, until the study is full, the time is up or too many trials failed.

Modelled on Optuna's ``study/_optimize.py`` (one trial's life: ask, run, tell), with
what a study shared by several processes needs:

- **Admission under the study lock.** Counting the trials that are finished or running
  and creating the next one happen in one locked step, so no process creates a trial
  the study will not run (no surplus), and the new trial's owner is recorded before the
  lock is released: a RUNNING trial seen without an owner under the lock is dead.
- **Recovery before each admission.** Trials of dead processes (same host: by pid;
  other hosts: by Optuna's RDB heartbeat) are failed and retried with the same
  parameters while the sweep goes on, not only at the next start.
- **One seed stream per study and trial number** (:func:`hposweep.study.samplers.make_sampler`);
  the grid sampler's point is chosen and recorded in the same locked step
  (:mod:`hposweep.study.grid`): a used-up grid ends the study as ``max_trials`` does.
- **Failed trials are replaced**, up to ``study.max_failures`` failures in this process.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hposweep._testing.faults import kill_point
from hposweep.config.schema import SweepConfig
from hposweep.errors import DeviceFailed, first_line
from hposweep.results import FAIL_REASON_ATTR, GRID_POINT_ATTR, TRIAL_ATTR
from hposweep.study import budget, recovery
from hposweep.study.grid import PointSampler, StudyGrid
from hposweep.study.open import OpenStudy
from hposweep.study.samplers import PRIOR_SAMPLERS, make_sampler
from hposweep.study.seeds import study_stream
from hposweep.study.storage import finished_states
from hposweep.study.warm_start import SamplerPrior, recorded_prior


@dataclass(frozen=True)
class Outcome:
    """How a trial ended: ``state`` is an Optuna ``TrialState`` (COMPLETE, PRUNED, FAIL)."""

    state: Any
    value: float | list[float] | None = None  # a list with several objectives
    lost: bool = False  # another worker failed the trial while it ran (heartbeat missed)


@dataclass(frozen=True)
class Stop:
    """Why this process started no further trial."""

    reason: str  # "max_trials", "grid_exhausted", "timeout", "max_failures", or a budget's
    message: str

    @property
    def study_done(self) -> bool:
        """The study needs no further trial (rather than this process stopping early)."""
        return self.reason in ("max_trials", "grid_exhausted")

    @property
    def study_ended(self) -> bool:
        """No run of the study starts a further trial: it needs none, or a study budget
        (``study.budget``, ``study.stop_when``) is spent; not this run's timeout or
        ``max_failures``, after which the next run goes on."""
        return self.reason not in ("timeout", "max_failures")


class TrialLoop:
    def __init__(self, cfg: SweepConfig, opened: OpenStudy, lock: Any,
                 run_trial: Callable[[Any], Outcome], after_trial: Callable[[Any], None],
                 on_recovered: Callable[[Any], None], on_lost: Callable[[Any], None]) -> None:
        self.cfg = cfg
        self.opened = opened
        self.lock = lock
        self.run_trial = run_trial
        self.after_trial = after_trial
        self.on_recovered = on_recovered
        self.on_lost = on_lost  # a trial another worker failed while it ran (heartbeat missed)
        self._stale_checked: float | None = None  # time.monotonic() of the last stale-trial check
        self._grid: StudyGrid | None = None
        self._prior: SamplerPrior | None = None  # a warm start's recorded trials, fitted once

    def run(self) -> Stop:
        s = self.cfg.study
        max_failures = s.max_failures or s.max_trials
        deadline = time.monotonic() + s.timeout_minutes * 60 if s.timeout_minutes else None
        failures = 0
        while True:
            if failures >= max_failures:
                return Stop("max_failures", f"stopped after {failures} failed trials "
                            f"(study.max_failures={max_failures}); fix the cause and run again "
                            "to continue the study")
            if deadline is not None and time.monotonic() >= deadline:
                return Stop("timeout", f"study.timeout_minutes={s.timeout_minutes} is up")
            trial = self._admit()
            if isinstance(trial, Stop):
                return trial
            outcome = self._run(trial)
            frozen = self._tell(trial, outcome)
            if outcome.lost or frozen.state != outcome.state:
                self.on_lost(trial)  # not counted: its retry runs it again
                continue
            if frozen.state.name == "FAIL":
                failures += 1
            self.after_trial(frozen)

    def _tell(self, trial: Any, outcome: Outcome) -> Any:
        """Record the outcome. A trial a fold-level pruner stopped has a value, the mean over
        the folds it ran (Optuna's ``tell`` would give it its last fold's score)."""
        from optuna.exceptions import UpdateFinishedTrialError

        if outcome.state.name != "PRUNED" or outcome.value is None:
            return self.opened.study.tell(trial, outcome.value, state=outcome.state,
                                          skip_if_finished=True)
        with contextlib.suppress(UpdateFinishedTrialError):  # another worker failed it
            self.opened.storage.set_trial_state_values(self.opened.trial_id(trial.number),
                                                       outcome.state, [outcome.value])
        # Recorded already: this returns it, and ends the trial for the study object as
        # ``tell`` does (the trial list samplers cache while a trial runs is dropped).
        return self.opened.study.tell(trial, state=outcome.state, skip_if_finished=True)

    def _admit(self) -> Any:
        """The next trial, or a :class:`Stop` when finished and running trials make
        ``max_trials``, a budget of the study is spent (:mod:`hposweep.study.budget`) or
        every point of the grid has a trial."""
        from optuna.trial import TrialState

        study = self.opened.study
        with self.lock:
            self._fail_stale_trials()
            # Through the study's cached storage: it reads only the trials that changed
            # (the storage's own get_n_trials loads every trial, twice per trial here).
            trials = study.get_trials(deepcopy=False)
            recovered = recovery.recover(self.opened, self.cfg.study.max_retry, trials)
            for trial in recovered:
                self.on_recovered(trial)
            if recovered:  # failed, and their retries queued
                trials = study.get_trials(deepcopy=False)
            taken = sum(t.state in (*finished_states(), TrialState.RUNNING) for t in trials)
            if taken >= self.cfg.study.max_trials:
                return Stop("max_trials", f"the study has its {self.cfg.study.max_trials} trials")
            spent = budget.spent(self.cfg, trials)
            if spent is not None:
                return Stop(spent.reason, spent.message)
            sampler = self._sampler(trials)
            if isinstance(sampler, Stop):
                return sampler
            study.sampler = sampler
            attrs: dict[str, Any] = {TRIAL_ATTR: {"owner": recovery.owner_identity()}}
            if isinstance(sampler, PointSampler):
                attrs[GRID_POINT_ATTR] = sampler.point
            return self._start(attrs, any(t.state == TrialState.WAITING for t in trials))

    def _start(self, attrs: dict[str, Any], queued: bool) -> Any:
        """The trial to run, with its user attrs (its owner, its grid point) recorded. A
        queued trial (a retry, an enqueued or warm-started one) is taken as ``study.ask``
        takes it, then its attrs written; a new trial is created with them in one write
        (``study.ask``, then the attrs, would be two or three)."""
        import optuna
        from optuna.trial import TrialState

        if queued:
            trial = self.opened.study.ask()
            kill_point("trial:asked")
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
            return trial
        template = optuna.trial.create_trial(state=TrialState.RUNNING, user_attrs=attrs)
        trial_id = self.opened.storage.create_new_trial(self.opened.study_id, template)
        kill_point("trial:created")
        self.opened.study.get_trials(deepcopy=False)  # the study's cache learns the new trial
        return optuna.trial.Trial(self.opened.study, trial_id)

    def _fail_stale_trials(self) -> None:
        """Fail (and retry) other hosts' trials whose heartbeat stopped: at most once per
        heartbeat interval. A trial turns stale ``grace_period`` after its last beat, and
        beats come once an interval: checking more often finds none sooner than that."""
        import optuna

        interval = heartbeat_interval(self.opened.storage)
        now = time.monotonic()
        if not interval or (self._stale_checked is not None
                            and now - self._stale_checked < interval):
            return
        optuna.storages.fail_stale_trials(self.opened.study)
        self._stale_checked = now

    def _sampler(self, trials: list[Any]) -> Any:
        """The sampler of the next trial, or a :class:`Stop` when the grid is used up."""
        stream = study_stream(self.opened.study.study_name, trials)
        name = self.cfg.study.sampler.name
        if name != "grid":
            prior: list[Any] = []
            if name in PRIOR_SAMPLERS:
                if self._prior is None:  # recorded at set-up, before any process's loop runs
                    self._prior = SamplerPrior(self.cfg, recorded_prior(self.opened.study))
                prior = self._prior.trials(trials)
            return make_sampler(self.cfg, stream, len(trials), prior)
        if self._grid is None or self._grid.stream != stream:
            self._grid = StudyGrid(self.cfg, stream)
        point = self._grid.next_point(trials)
        if point is None:
            return Stop("grid_exhausted", self._grid.exhausted_message())
        return PointSampler(point)

    def _run(self, trial: Any) -> Outcome:
        """The trial under its heartbeat; whatever escapes (Ctrl-C, a bug of ours) fails
        the trial in the study before it propagates."""
        from optuna.trial import TrialState

        try:
            with _heartbeat(self.opened, trial.number):
                return self.run_trial(trial)
        except BaseException as exc:
            if not isinstance(exc, (KeyboardInterrupt, DeviceFailed)):  # reason set
                trial.set_user_attr(FAIL_REASON_ATTR, "internal error: "
                                    f"{type(exc).__name__}: {first_line(exc)}")
            self.opened.study.tell(trial, state=TrialState.FAIL)
            raise


def heartbeat_interval(storage: Any) -> int | None:
    """Heartbeats exist on RDB storages (SQLite included) when configured."""
    import optuna

    if isinstance(storage, optuna.storages.RDBStorage):
        return storage.get_heartbeat_interval()
    return None


@contextlib.contextmanager
def _heartbeat(opened: OpenStudy, number: int) -> Iterator[None]:
    """Record the trial's heartbeat as it starts and every interval while it runs (what
    ``study.optimize`` does): another host's worker fails the trial when the beats stop.
    The first beat is written here, before the trial's own writes: from a thread it would
    contend with them for SQLite's write lock at every trial."""
    interval = heartbeat_interval(opened.storage)
    if not interval:
        yield
        return
    trial_id = opened.trial_id(number)
    stop = threading.Event()

    def record() -> None:
        with contextlib.suppress(Exception):  # a missed beat is retried next interval
            opened.storage.record_heartbeat(trial_id)

    def beat() -> None:
        while not stop.wait(interval):
            record()

    record()
    thread = threading.Thread(target=beat, name=f"heartbeat-trial-{number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
