"""A study's feasible Pareto front as hposweep reports it: its members (one per trial on
``study.best_trials``), the knee among them, and which members kept a checkpoint."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hposweep.errors import UserError
from hposweep.objectives.pareto import knee
from hposweep.objectives.spec import Objective, objectives_of, parse_constraint, uses_front
from hposweep.results import mlflow_run_of


@dataclass
class FrontMember:
    number: int
    values: dict[str, float]  # objective metric -> value (mean over folds)
    params: dict[str, Any]
    constraints: dict[str, float] = field(default_factory=dict)  # Optuna's values: <= 0 holds
    knee: bool = False
    checkpoint: str | None = None  # the kept checkpoint dir, when this member has one
    mlflow_run_id: str | None = None


def front_values(study: Any) -> dict[int, tuple[float, ...]]:
    """Trial number -> objective values of each trial on the feasible front."""
    return {t.number: tuple(t.values) for t in study.best_trials}


def knee_of(front: dict[int, tuple[float, ...]], objectives: list[Objective]) -> int | None:
    return knee(front, [o.maximize for o in objectives])


def front_members(study: Any, objectives: list[Objective],
                  checkpoint_of: Callable[[int], Path | None]) -> list[FrontMember]:
    """The front, by trial number, the knee flagged: the knee of the members that kept a
    checkpoint when any did (the sweep's best trial must be one it can export: a member's
    checkpoint, once deleted, never comes back, and the knee moves as the front grows),
    else of the whole front."""
    trials = sorted(study.best_trials, key=lambda t: t.number)
    kept_dirs = {t.number: checkpoint_of(t.number) for t in trials}
    values = {t.number: tuple(t.values) for t in trials}
    with_checkpoint = {n: v for n, v in values.items() if kept_dirs[n]}
    chosen = knee_of(with_checkpoint or values, objectives)
    members = []
    for trial in trials:
        kept = kept_dirs[trial.number]
        members.append(FrontMember(
            trial.number, {o.metric: v for o, v in zip(objectives, trial.values, strict=True)},
            dict(trial.params), dict(trial.constraints), trial.number == chosen,
            str(kept) if kept else None, mlflow_run_of(trial)))
    return members


def knee_member(members: list[FrontMember]) -> FrontMember | None:
    return next((m for m in members if m.knee), None)


def best_and_front(cfg: Any, study: Any, kept: Mapping[int, Path]
                   ) -> tuple[Any | None, list[FrontMember]]:
    """The sweep's best trial (None before one completed) and, with a Pareto front (several
    objectives or constraints), the front, whose knee is the best trial. ``kept``: the
    trials' kept checkpoint dirs."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if not any(t.state == TrialState.COMPLETE for t in trials):
        return None, []
    if not uses_front(cfg):
        return study.best_trial, []
    members = front_members(study, objectives_of(cfg), kept.get)
    knee = knee_member(members)
    return (trials[knee.number] if knee else None), members


def fill_best(report: Any, cfg: Any, study: Any, kept: Mapping[int, Path]) -> None:
    """Set the best-trial fields that ``run``'s result and ``status`` share (best trial,
    value, params, fold values, kept checkpoint, MLflow run, objectives, front) from one
    read of the study and of ``best.json`` (``kept``)."""
    from hposweep.objectives.spec import front_metrics
    from hposweep.results import FOLD_VALUES_ATTR

    best, report.front = best_and_front(cfg, study, kept)
    report.objectives = front_metrics(cfg)
    if best is None:
        return
    report.best_trial, report.best_value = best.number, best.values[0]
    report.best_params = dict(best.params)
    report.best_fold_values = list(best.user_attrs.get(FOLD_VALUES_ATTR, best.values[:1]))
    report.checkpoint = str(kept[best.number]) if best.number in kept else None
    report.mlflow_best_run_id = mlflow_run_of(best)


def front_choice(cfg: Any, members: list[Any], choice: str, who: str, kind: str = "member") -> Any:
    """The member of ``members`` (of the Pareto front) that ``choice`` names: ``knee``,
    ``trial N``, or ``METRIC <= X`` / ``METRIC >= X`` (of the members that satisfy it, the
    best in the first objective). Exit 2 (``who``: what asked) when it names none."""
    words = choice.split()
    if choice.strip() == "knee":
        chosen = [m for m in members if m.knee]
    elif len(words) == 2 and words[0] == "trial" and words[1].isdigit():
        chosen = [m for m in members if m.number == int(words[1])]
    else:
        try:
            condition = parse_constraint(choice)
        except ValueError:
            raise UserError(f"{who} {choice!r}: use knee, 'trial N' or 'METRIC <= X' / "
                            "'METRIC >= X'") from None
        objectives = objectives_of(cfg)
        if condition.metric not in (metrics := [o.metric for o in objectives]):
            raise UserError(f"{who} {choice!r}: {condition.metric!r} is not an objective "
                            f"({', '.join(metrics)})")
        first = objectives[0]
        chosen = sorted((m for m in members if condition.holds(m.values)),
                        key=lambda m: (-m.values[first.metric] if first.maximize
                                       else m.values[first.metric], m.number))
    if not chosen:
        listed = ", ".join(f"trial {m.number}" + (" (knee)" if m.knee else "") for m in members)
        raise UserError(f"{who} {choice!r} names no {kind} of the Pareto front "
                        f"({kind}s: {listed or 'none'})")
    return chosen[0]
