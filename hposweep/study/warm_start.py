"""Trials that run first: the ``study.enqueue`` parameter sets and the best parameter sets
of another study (``study.warm_start``).

They are queued at set-up, under the study lock, as WAITING trials that the next
admissions pop before anything is sampled. Each carries the user attr
``hposweep.warm_start`` (``{source, from_trial, key}``); those trials are the record
that the queueing was done, created in the same locked step, so a resume, or a worker
that joins, never queues them again (an ``enqueue`` entry by its parameters, a warm start
by its ``from``). Only parameters of this search space whose values it can sample are
kept; the others are dropped, with a warning, and sampled as usual.

A warm start also records, in the same step, the other study's finished trials with their
values (the study user attr ``hposweep.warm_start_prior``): the TPE and GP samplers model
them with the study's own (:class:`SamplerPrior`, :mod:`hposweep.study.prior_sampler`), so
they count as the sampler's start-up. They are never trials of this study.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hposweep.config.schema import STORAGE_PREFIXES, ParamSpec, SweepConfig
from hposweep.errors import UserError, first_line
from hposweep.objectives.spec import objectives_of
from hposweep.results import (
    ENQUEUE_SOURCE,
    OBJECTIVE_ATTR,
    WARM_START_ATTR,
    WARM_START_PRIOR_ATTR,
    origin,
)
from hposweep.study.open import OpenStudy
from hposweep.study.samplers import PRIOR_SAMPLERS
from hposweep.study.seeds import WARM_START_KEY_PREFIX
from hposweep.study.storage import anything_stored, make_storage, redact_url, storage_url


@dataclass(frozen=True)
class Planned:
    """A parameter set to queue, and where it came from."""

    params: dict[str, Any]
    source: str  # "enqueue", or "study:<name>" for a warm start
    from_trial: int | None  # the trial of the other study; the entry's index for enqueue
    key: str  # what identifies it once queued


def queue_first_trials(cfg: SweepConfig, opened: OpenStudy, info: Callable[[str], None],
                       warn: Callable[[str], None]) -> int:
    """Queue what was never queued in this study, and record a warm start's prior (see
    :class:`SamplerPrior`); returns how many trials were queued. Call under the study lock."""
    trials = opened.study.get_trials(deepcopy=False)
    done = {t.user_attrs[WARM_START_ATTR].get("key") for t in trials
            if WARM_START_ATTR in t.user_attrs}
    planned = [p for p in _enqueued(cfg) if p.key not in done]
    warm = cfg.study.warm_start
    if warm is not None and _warm_key(warm.source) not in done:
        source = _read_source(cfg, opened, warm.source)
        best = source.complete[:warm.top_k]
        info(f"warm start: {len(best)} parameter set(s) from study {source.name!r} (its best "
             f"trials: {', '.join(str(t.number) for t in best) or 'none completed'}) run first")
        planned += [Planned(dict(t.params), f"study:{source.name}", t.number, source.key)
                    for t in best]
        _record_prior(cfg, opened, source, info, warn)  # before the trials that mark it done
    queued = 0
    for plan in planned:
        params = _fit(plan, cfg.search_space, warn)
        if not params:
            continue
        opened.study.enqueue_trial(params, user_attrs={WARM_START_ATTR: {
            "source": plan.source, "from_trial": plan.from_trial, "key": plan.key}})
        queued += 1
    return queued


def recorded_prior(study: Any) -> dict[str, Any]:
    """The warm starts' finished trials this study recorded (WARM_START_PRIOR_ATTR)."""
    return study.user_attrs.get(WARM_START_PRIOR_ATTR) or {}


class SamplerPrior:
    """The finished trials of the studies this one was warm-started from (``records``:
    :func:`recorded_prior`), as Optuna COMPLETE trials of this search space for the sampler
    to model (numbered below 0, so older than any trial of this study), never trials of
    this study; those that no longer fit the search space (it may change between runs) are
    left out.

    A source trial's value is shifted by the median difference between the warm-started
    trials' values here and their values in the source (0 until one of them completes):
    another backbone or data set may score higher or lower throughout.

    One per trial loop: the records are fitted to the search space once (about 30 us a
    record), and the trials made again only when a shift changed (a warm-started trial
    completed), not for each trial."""

    def __init__(self, cfg: SweepConfig, records: dict[str, Any]) -> None:
        import optuna

        from hposweep.study.space import suggest

        # per warm start, in key order: its records, each (value, params, distributions)
        self._fitted: list[tuple[str, list[dict[str, Any]], list[tuple[float, Any, Any]]]] = []
        for key in sorted(records):
            fitted = []
            for record in records[key]["trials"]:
                params = _taken_whole(record["params"], cfg.search_space)
                if params is None:  # the search space changed since: it no longer fits
                    continue
                fixed = optuna.trial.FixedTrial(params)
                suggest(fixed, cfg.search_space)
                fitted.append((record["value"], fixed.params, fixed.distributions))
            self._fitted.append((key, records[key]["trials"], fitted))
        self._shifts: tuple[float, ...] | None = None
        self._prior: list[Any] = []

    def trials(self, trials: Sequence[Any]) -> list[Any]:
        """The prior, shifted by what the study's ``trials`` scored."""
        import optuna

        shifts = tuple(_shift(key, records, trials) for key, records, _ in self._fitted)
        if shifts != self._shifts:
            prior = [optuna.trial.create_trial(params=params, value=value + shift,
                                               distributions=distributions)
                     for (_, _, fitted), shift in zip(self._fitted, shifts, strict=True)
                     for value, params, distributions in fitted]
            for number, trial in enumerate(prior, start=-len(prior)):
                trial.number = number
            self._shifts, self._prior = shifts, prior
        return self._prior


def _shift(key: str, records: list[dict[str, Any]], trials: Sequence[Any]) -> float:
    """The median of (value here - value in the source) over this study's COMPLETE
    trials warm-started with ``key``; 0 when there are none."""
    source_value = {r["number"]: r["value"] for r in records}
    differences = []
    for trial in trials:
        queued = trial.user_attrs.get(WARM_START_ATTR) or {}
        if (trial.state.name == "COMPLETE" and queued.get("key") == key
                and queued.get("from_trial") in source_value):
            differences.append(trial.value - source_value[queued["from_trial"]])
    return statistics.median(differences) if differences else 0.0


def _enqueued(cfg: SweepConfig) -> Iterator[Planned]:
    for index, params in enumerate(cfg.study.enqueue):
        key = "enqueue:" + json.dumps(dict(params), sort_keys=True, default=str)
        yield Planned(dict(params), ENQUEUE_SOURCE, index, key)


def _warm_key(source: str) -> str:
    return WARM_START_KEY_PREFIX + source


@dataclass(frozen=True)
class _Source:
    """The study a warm start comes from: its COMPLETE trials, best first."""

    name: str
    key: str  # the warm start's key in this study (WARM_START_ATTR)
    complete: list[Any]
    goal: str  # "maximize" or "minimize"
    metric: str | None  # its objective metric, when an hposweep study recorded it


def _read_source(cfg: SweepConfig, opened: OpenStudy, source: str) -> _Source:
    import optuna

    url, name = _source(cfg, source)
    if name == opened.study.study_name and url == storage_url(cfg, name):
        raise UserError(f"study.warm_start.from: {source!r} is this study itself")
    where = redact_url(url)
    if not anything_stored(url):
        raise UserError(f"study.warm_start.from: no study in {where}")
    storage = make_storage(url, reading=True)
    names = [s.study_name for s in storage.get_all_studies()]
    if name is None:
        if len(names) != 1:
            raise UserError(f"study.warm_start.from: {where} holds {len(names)} studies "
                            f"({', '.join(names) or 'none'}); name one with {url}#<study>")
        name = names[0]
    if name not in names:
        raise UserError(f"study.warm_start.from: no study {name!r} in {where} "
                        f"(it has: {', '.join(names) or 'none'})")
    try:
        other = optuna.load_study(study_name=name, storage=storage)
        complete = other.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        maximize = other.direction == optuna.study.StudyDirection.MAXIMIZE
    except Exception as exc:  # e.g. a multi-objective study has no single direction
        raise UserError(f"study.warm_start.from: cannot read study {name!r}: {first_line(exc)}") from None
    best_first = sorted(complete, key=lambda t: -t.value if maximize else t.value)
    return _Source(name, _warm_key(source), best_first, "maximize" if maximize else "minimize",
                   _metric(other.user_attrs.get(OBJECTIVE_ATTR) or {}))


def _metric(settings: dict[str, Any]) -> str | None:
    """The one objective's metric that an hposweep study recorded (identity.objective_settings)."""
    listed = settings.get("study.objectives")
    return listed[0]["metric"] if listed else settings.get("study.objective_metric")


def _record_prior(cfg: SweepConfig, opened: OpenStudy, source: _Source, info: Callable[[str], None],
                  warn: Callable[[str], None]) -> None:
    """Keep the source's COMPLETE trials that give every parameter of this search space a
    value it can take, with their values, for :class:`SamplerPrior`: only when both
    studies optimize one objective, the same metric the same way."""
    objectives = objectives_of(cfg)
    if len(objectives) > 1 or not source.complete:
        return
    (objective,) = objectives
    differs = [f"{what} {theirs}, this study {ours}" for what, theirs, ours in (
        ("goal", source.goal, objective.goal), ("metric", source.metric, objective.metric))
        if theirs is not None and theirs != ours]
    if differs:
        warn(f"warm start: the values of {source.name!r} are not given to the sampler "
             f"({'; '.join(differs)})")
        return
    kept = [{"number": t.number, "params": params, "value": t.value} for t in source.complete
            if (params := _taken_whole(t.params, cfg.search_space)) is not None]
    records = dict(opened.study.user_attrs.get(WARM_START_PRIOR_ATTR) or {})
    records[source.key] = {"source": f"study:{source.name}", "trials": kept}
    opened.study.set_user_attr(WARM_START_PRIOR_ATTR, records)
    if cfg.study.sampler.name in PRIOR_SAMPLERS:
        left_out = len(source.complete) - len(kept)
        why = (f" ({left_out} left out: they lack a parameter of this search space or a value "
               "it can take)" if left_out else "")
        info(f"warm start: the {cfg.study.sampler.name} sampler models {len(kept)} of the "
             f"{len(source.complete)} finished trials of {source.name!r} from the first trial "
             f"on{why}")


def _taken_whole(params: dict[str, Any], space: dict[str, ParamSpec]) -> dict[str, Any] | None:
    """Every parameter of ``space`` from ``params``, as its type; None if one is missing
    or its value does not fit."""
    if any(name not in params or _misfit(spec, params[name]) is not None
           for name, spec in space.items()):
        return None
    return {name: _as_type(spec, params[name]) for name, spec in space.items()}


def _source(cfg: SweepConfig, source: str) -> tuple[str, str | None]:
    """(storage URL, study name or None) of ``warm_start.from``: a storage URL with an
    optional ``#study``, or a study name in this config's storage."""
    if source.startswith(STORAGE_PREFIXES):
        url, _, name = source.partition("#")
        return url, name or None
    url = storage_url(cfg, source)
    if url is None:  # study.persist=false: this sweep's studies live in memory
        raise UserError(f"study.warm_start.from: {source!r} names a study, and this config keeps "
                        "none on disk (study.persist=false): give its storage URL#study")
    return url, source


def _fit(plan: Planned, space: dict[str, ParamSpec], warn: Callable[[str], None]) -> dict[str, Any]:
    """The parameters this search space can take, as its types; the others are named, with
    what is sampled instead and what is taken as given."""
    kept: dict[str, Any] = {}
    dropped = []
    for name, value in plan.params.items():
        spec = space.get(name)
        problem = "not in this search space" if spec is None else _misfit(spec, value)
        if problem is None:
            assert spec is not None
            kept[name] = _as_type(spec, value)
        else:
            dropped.append(f"{name}={_written(value)} ({problem})")
    if dropped:
        sampled = ", ".join(name for name in space if name not in kept)
        taken = ", ".join(f"{name}={_written(value)}" for name, value in kept.items())
        then = (f"the others are sampled ({sampled}), with {taken} as given" if kept
                else "nothing is left: not queued")
        where = origin(plan.source, plan.from_trial)
        what = where if plan.source == ENQUEUE_SOURCE else f"warm start from {where}"
        warn(f"{what}: dropped {', '.join(dropped)}; {then}")
    return kept


def _written(value: Any) -> str:
    """A value as a user writes it: ``0.15``, not the ``0.15000000000000002`` that float
    arithmetic (a stepped parameter) left in the other study."""
    return format(value, ".12g") if isinstance(value, float) else repr(value)


def _misfit(spec: ParamSpec, value: Any) -> str | None:
    """Why the search space entry cannot take ``value``, or None."""
    if spec.type == "categorical":
        choices = list(spec.choices or [])
        ok = any(value == c and type(value) is type(c) or _same_number(value, c) for c in choices)
        return None if ok else f"not one of {choices}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"not a number for a {spec.type} parameter"
    assert spec.low is not None and spec.high is not None
    if spec.type == "int" and value != int(value):
        return "not a whole number for an int parameter"
    if not spec.low <= value <= spec.high:
        return f"outside [{spec.low:g}, {spec.high:g}]"
    step = spec.step if spec.step is not None else (1 if spec.type == "int" else None)
    if step is not None:
        ratio = (value - spec.low) / step
        if abs(ratio - round(ratio)) > 1e-8 * max(1.0, abs(ratio)):
            return f"not on the step {step:g} from {spec.low:g}"
    return None


def _same_number(value: Any, choice: Any) -> bool:
    """16 and 16.0 are the same choice; True and 1 are not."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, choice))
    return numbers and value == choice


def _as_type(spec: ParamSpec, value: Any) -> Any:
    if spec.type == "int":
        return int(value)
    if spec.type == "float":
        return float(value)
    return next(c for c in spec.choices or [] if c == value)
