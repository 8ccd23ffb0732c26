"""Budgets for the whole study and the no-improvement stop: when a worker starts no trial.

Everything is read from the study itself, so it holds across workers, machines and
resumes: a trial's wall time is Optuna's ``datetime_complete - datetime_start`` (now,
for a running trial), as the storage recorded them (each worker's clock). The check runs
in the locked admission step (:mod:`hposweep.study.loop`), after dead trials were
recovered: once a budget is spent no worker starts a trial, and each may finish the one
it runs (the overshoot: at most one trial per worker).
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hposweep.config.schema import SweepConfig
from hposweep.results import FOLD_VALUES_ATTR

HOUR = 3600.0


@dataclass(frozen=True)
class Usage:
    """What a study has spent, in hours."""

    trial_hours: float  # every trial's wall time, summed (failed and running ones too)
    wall_hours: float  # since the study's first trial started (0 before any)


@dataclass(frozen=True)
class Spent:
    """Why the study starts no further trial: ``reason`` is ``trial_hours``,
    ``wall_hours`` or ``no_improvement``."""

    reason: str
    message: str


def usage(trials: Sequence[Any], now: dt.datetime | None = None) -> Usage:
    now = now or dt.datetime.now()
    started = [t for t in trials if t.datetime_start is not None]
    if not started:
        return Usage(0.0, 0.0)
    seconds = sum(((t.datetime_complete or now) - t.datetime_start).total_seconds()
                  for t in started)
    first = min(t.datetime_start for t in started)
    return Usage(seconds / HOUR, (now - first).total_seconds() / HOUR)


def spent(cfg: SweepConfig, trials: Sequence[Any], now: dt.datetime | None = None) -> Spent | None:
    """The first budget or stop rule the study has reached, else None."""
    budget = cfg.study.budget
    if budget.trial_hours is not None or budget.wall_hours is not None:
        used = usage(trials, now)
        if budget.trial_hours is not None and used.trial_hours >= budget.trial_hours:
            return Spent("trial_hours", f"study.budget.trial_hours={budget.trial_hours:g} is spent: "
                                        f"the study's trials ran {used.trial_hours:.3g} h in all")
        if budget.wall_hours is not None and used.wall_hours >= budget.wall_hours:
            return Spent("wall_hours", f"study.budget.wall_hours={budget.wall_hours:g} is spent: "
                                       f"{used.wall_hours:.3g} h since the study's first trial")
    return _no_improvement(cfg, trials)


def _no_improvement(cfg: SweepConfig, trials: Sequence[Any]) -> Spent | None:
    """``stop_when.no_improvement``: N finished (COMPLETE or PRUNED) trials in a row, in the
    order they finished, none of which beat the best before it by more than min_delta (an
    infeasible trial, under ``study.constraints``, beats nothing)."""
    wanted = cfg.study.stop_when.no_improvement
    if wanted is None:
        return None
    maximize = cfg.study.objective_goal == "maximize"
    finished = sorted((t for t in trials if t.state.name in ("COMPLETE", "PRUNED")
                       and t.datetime_complete is not None),
                      key=lambda t: (t.datetime_complete, t.number))
    best, delta, streak = None, 0.0, 0
    for trial in finished:
        feasible = all(v <= 0 for v in trial.constraints.values())  # study.constraints
        value = trial.value if trial.state.name == "COMPLETE" and feasible else None
        if value is not None and (best is None or _beats(value, best.value, delta, maximize)):
            best, delta, streak = trial, min_delta(cfg, trial), 0
        else:
            streak += 1
    if best is None or streak < wanted:
        return None
    return Spent("no_improvement",
                 f"study.stop_when.no_improvement={wanted}: the last {streak} finished trials did "
                 f"not beat trial {best.number} ({best.value:.4g}) by more than {delta:.3g}")


def _beats(value: float, best: float, delta: float, maximize: bool) -> bool:
    return value - best > delta if maximize else best - value > delta


def min_delta(cfg: SweepConfig, best: Any) -> float:
    """The improvement that counts: ``stop_when.min_delta``, else the standard error of the
    best trial's fold scores (k-fold), else 0."""
    if cfg.study.stop_when.min_delta is not None:
        return float(cfg.study.stop_when.min_delta)
    folds = best.user_attrs.get(FOLD_VALUES_ATTR) or []
    if len(folds) < 2:
        return 0.0
    return statistics.stdev(folds) / math.sqrt(len(folds))
