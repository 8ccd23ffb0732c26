"""Trials that run first: the ``study.enqueue`` parameter sets and the best parameter sets
of another study (``study.warm_start``).

They are queued at set-up, under the study lock, as WAITING trials that the next
admissions pop before anything is sampled. Each carries the user attr
``hposweep.warm_start`` (``{source, from_trial, key}``); those trials are the record
that the queueing was done, created in the same locked step, so a resume, or a worker
that joins, never queues them again (an ``enqueue`` entry by its parameters, a warm start
by its ``from``). Only parameters of this search space whose values it can sample are
kept; the others are dropped, with a warning, and sampled as usual.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from hposweep.config.schema import STORAGE_PREFIXES, ParamSpec, SweepConfig
from hposweep.errors import UserError, first_line
from hposweep.results import ENQUEUE_SOURCE, WARM_START_ATTR, origin
from hposweep.study.open import OpenStudy
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
    """Queue what was never queued in this study; returns how many trials were queued.
    Call under the study lock."""
    trials = opened.study.get_trials(deepcopy=False)
    done = {t.user_attrs[WARM_START_ATTR].get("key") for t in trials
            if WARM_START_ATTR in t.user_attrs}
    planned = [p for p in _enqueued(cfg) if p.key not in done]
    warm = cfg.study.warm_start
    if warm is not None and _warm_key(warm.source) not in done:
        planned += _best_of_other_study(cfg, opened, warm.source, warm.top_k, info)
    queued = 0
    for plan in planned:
        params = _fit(plan, cfg.search_space, warn)
        if not params:
            continue
        opened.study.enqueue_trial(params, user_attrs={WARM_START_ATTR: {
            "source": plan.source, "from_trial": plan.from_trial, "key": plan.key}})
        queued += 1
    return queued


def _enqueued(cfg: SweepConfig) -> Iterator[Planned]:
    for index, params in enumerate(cfg.study.enqueue):
        key = "enqueue:" + json.dumps(dict(params), sort_keys=True, default=str)
        yield Planned(dict(params), ENQUEUE_SOURCE, index, key)


def _warm_key(source: str) -> str:
    return WARM_START_KEY_PREFIX + source


def _best_of_other_study(cfg: SweepConfig, opened: OpenStudy, source: str, top_k: int,
                         info: Callable[[str], None]) -> list[Planned]:
    """The ``top_k`` best COMPLETE trials of the study ``source`` names, best first."""
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
    best = sorted(complete, key=lambda t: -t.value if maximize else t.value)[:top_k]
    info(f"warm start: {len(best)} parameter set(s) from study {name!r} (its best trials: "
         f"{', '.join(str(t.number) for t in best) or 'none completed'}) run first")
    key = _warm_key(source)
    return [Planned(dict(t.params), f"study:{name}", t.number, key) for t in best]


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
