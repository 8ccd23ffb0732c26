"""The grid sampler: each point of the grid runs once per study, in one order per study.

Optuna's ``GridSampler`` does not fit a study that several processes share through a
locked admission step: it assigns grid point ``n`` to trial ``n`` of a grid shuffled by
its seed (another order for each seed), re-draws points that are still running once
every point has started, and calls ``study.stop()`` (which raises outside
``study.optimize``) when the grid is used up. Here the admission step, under the study
lock, takes the first point in the study's order that no trial holds, records it on the
new trial in the same locked step (:data:`GRID_POINT_ATTR`, carried by a retry), and
reports the grid exhausted when no point is free and no queued trial waits.

A point is held by every trial whose parameters (sampled, queued, or recorded at
admission) are that point, whatever its state: a failed point is not re-run (as with
Optuna's ``GridSampler``); a trial that dies is retried with its point.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Any

from hposweep.config.schema import SweepConfig
from hposweep.results import GRID_POINT_ATTR
from hposweep.study.seeds import stream_seed
from hposweep.study.space import grid


class StudyGrid:
    """The grid of a study's search space, in the order of the study ``stream``."""

    def __init__(self, cfg: SweepConfig, stream: str) -> None:
        values = grid(cfg.search_space)
        self.stream = stream
        self.names = sorted(values)
        self.points = [dict(zip(self.names, p, strict=True))
                       for p in itertools.product(*(values[n] for n in self.names))]
        seed = cfg.study.sampler.seed
        order = stream_seed(0 if seed is None else seed, stream, "grid")  # one order in every process
        random.Random(order).shuffle(self.points)

    def next_point(self, trials: Sequence[Any]) -> dict[str, Any] | None:
        """The point the next trial runs; None when every point is held and no trial waits.

        A waiting trial (a retry, an enqueued or warm-started set) is what the next
        admission runs: its own values, the rest from the first free point that agrees."""
        held = {self._key(_values(t)) for t in trials}
        free = [p for p in self.points if self._key(p) not in held]
        waiting = next((t for t in trials if t.state.name == "WAITING"), None)
        if waiting is None:
            return free[0] if free else None
        fixed = _values(waiting)
        agreeing = [p for p in free if _agrees(p, fixed)] or free or self.points
        return {**agreeing[0], **fixed}

    def exhausted_message(self) -> str:
        """Why no further trial runs, once :meth:`next_point` has none."""
        return f"the grid is exhausted ({len(self.points)} points)"

    def _key(self, values: dict[str, Any]) -> tuple[Any, ...] | None:
        if any(n not in values for n in self.names):
            return None
        return tuple(_normal(values[n]) for n in self.names)


def _values(trial: Any) -> dict[str, Any]:
    """A trial's parameters: recorded at admission, queued (Optuna's ``fixed_params``), sampled."""
    return {**trial.user_attrs.get(GRID_POINT_ATTR, {}),
            **trial.system_attrs.get("fixed_params", {}), **trial.params}


def _agrees(point: dict[str, Any], fixed: dict[str, Any]) -> bool:
    return all(_normal(point[n]) == _normal(v) for n, v in fixed.items() if n in point)


def _normal(value: Any) -> Any:
    """Grid floats are rounded to 12 digits (:func:`hposweep.study.space.grid`)."""
    return round(value, 12) if isinstance(value, float) else value


class PointSampler:
    """An Optuna sampler that gives each parameter its value at one grid point. (The
    methods Optuna calls, without ``BaseSampler``: this module stays free of Optuna's
    import, like the rest of the trial loop's.)"""

    def __init__(self, point: dict[str, Any]) -> None:
        self.point = point

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return {}

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: Any, trial: Any, param_name: str, distribution: Any) -> Any:
        return self.point[param_name]

    def before_trial(self, study: Any, trial: Any) -> None:
        pass

    def after_trial(self, study: Any, trial: Any, state: Any, values: Sequence[float] | None) -> None:
        pass

    def reseed_rng(self) -> None:
        pass
