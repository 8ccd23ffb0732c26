"""What a study optimizes and what a trial must satisfy: objectives and constraints.

``study.objectives`` lists several metrics, each with its goal; without it the single
``study.objective_metric`` / ``objective_goal`` is the one objective. A constraint is
``"metric <= bound"`` or ``"metric >= bound"``; it becomes an Optuna constraint value
(``<= 0`` is feasible: ``metric - bound``, or ``bound - metric``), set on the trial with
``Trial.set_constraint`` before the trial is told, so that samplers that understand
constraints (TPE, NSGA-II, GP) use them and ``study.best_trials`` leaves infeasible
trials out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CONSTRAINT = re.compile(r"^\s*([^\s<>=]+)\s*(<=|>=)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Objective:
    metric: str
    goal: str  # maximize | minimize

    @property
    def maximize(self) -> bool:
        return self.goal == "maximize"


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str  # <= | >=
    bound: float

    @property
    def key(self) -> str:
        """The constraint's name in the study (``Trial.set_constraint``) and in reports."""
        return f"{self.metric} {self.op} {self.bound:g}"

    def violation(self, metrics: Mapping[str, float]) -> float:
        """Optuna's constraint value: 0 or less when satisfied."""
        value = metrics[self.metric]
        return value - self.bound if self.op == "<=" else self.bound - value

    def holds(self, metrics: Mapping[str, float]) -> bool:
        return self.violation(metrics) <= 0


def parse_constraint(text: str) -> Constraint:
    """``"latency_ms <= 20"`` -> Constraint; ValueError naming what is wrong."""
    match = CONSTRAINT.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not 'METRIC <= NUMBER' or 'METRIC >= NUMBER'")
    metric, op, bound = match.groups()
    try:
        value = float(bound)
    except ValueError:
        raise ValueError(f"{text!r}: {bound!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r}: the bound must be a finite number")
    return Constraint(metric, op, value)


def objectives_of(cfg: Any) -> list[Objective]:
    """The study's objectives, in order (the first one is the "primary" objective)."""
    s = cfg.study
    if s.objectives:
        return [Objective(o.metric, o.goal) for o in s.objectives]
    return [Objective(s.objective_metric, s.objective_goal)]


def constraints_of(cfg: Any) -> list[Constraint]:
    return [parse_constraint(text) for text in cfg.study.constraints]


def uses_front(cfg: Any) -> bool:
    """Several objectives or any constraint: the kept checkpoints are the feasible Pareto
    front (``study.best_trials``), not the best ``keep_best`` values."""
    return len(objectives_of(cfg)) > 1 or bool(cfg.study.constraints)


def front_metrics(cfg: Any) -> list[str]:
    """The objectives' metrics when the study has a Pareto front (what ``run --json`` and
    ``status --json`` call ``objectives``), else none."""
    return [o.metric for o in objectives_of(cfg)] if uses_front(cfg) else []


def required_metrics(cfg: Any) -> list[str]:
    """The metrics every trial must return as finite numbers."""
    names = [o.metric for o in objectives_of(cfg)] + [c.metric for c in constraints_of(cfg)]
    return list(dict.fromkeys(names))
