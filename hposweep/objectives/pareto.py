"""The Pareto front's arithmetic, on plain numbers: domination, the knee, crowding
distance and the rule that trims a front to ``keep_best`` members.

Members are ``{trial number: objective values}``; ``maximize[i]`` says the goal of
objective ``i``. Every tie is broken by the lower trial number, so each function is a
pure function of its input.

- **Normalised**: each objective is min-max scaled over the members to [0, 1] with 0
  the best value (an objective on which all members are equal scales to 0).
- **Knee**: the member closest (Euclidean) to the utopia point (0, ..., 0) in normalised
  space.
- **Crowding distance** (NSGA-II's): per objective, members sorted by their normalised
  value; the two ends get infinity, the others the gap between their two neighbours;
  summed over the objectives.
- **Trim** to ``keep`` members: all of them if they fit; else the best member of each
  objective (in the objectives' order), then the knee, then the others by crowding
  distance, largest first; the first ``keep`` of that order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Values = Sequence[float]


def _loss(values: Values, maximize: Sequence[bool]) -> tuple[float, ...]:
    return tuple(-v if up else v for v, up in zip(values, maximize, strict=True))


def dominates(a: Values, b: Values, maximize: Sequence[bool]) -> bool:
    """Whether ``a`` is at least as good as ``b`` in every objective and better in one."""
    la, lb = _loss(a, maximize), _loss(b, maximize)
    pairs = list(zip(la, lb, strict=True))
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)


def front(members: Mapping[int, Values], maximize: Sequence[bool]) -> list[int]:
    """The non-dominated members, by trial number."""
    return sorted(n for n, v in members.items()
                  if not any(dominates(w, v, maximize) for m, w in members.items() if m != n))


def normalised(members: Mapping[int, Values],
               maximize: Sequence[bool]) -> dict[int, tuple[float, ...]]:
    losses = {n: _loss(v, maximize) for n, v in members.items()}
    columns = list(zip(*losses.values(), strict=True)) if losses else []
    lows = [min(c) for c in columns]
    spans = [max(c) - min(c) for c in columns]
    return {n: tuple((x - lo) / span if span > 0 else 0.0
                     for x, lo, span in zip(loss, lows, spans, strict=True))
            for n, loss in losses.items()}


def knee(members: Mapping[int, Values], maximize: Sequence[bool]) -> int | None:
    """The member closest to the utopia point after min-max normalisation."""
    if not members:
        return None
    scaled = normalised(members, maximize)
    return min(scaled, key=lambda n: (math.hypot(*scaled[n]), n))


def crowding(members: Mapping[int, Values], maximize: Sequence[bool]) -> dict[int, float]:
    scaled = normalised(members, maximize)
    distance = dict.fromkeys(scaled, 0.0)
    for i in range(len(maximize)):
        order = sorted(scaled, key=lambda n: (scaled[n][i], n))
        if len(order) < 3:
            distance.update(dict.fromkeys(order, math.inf))
            continue
        distance[order[0]] = distance[order[-1]] = math.inf
        for before, here, after in zip(order, order[1:], order[2:], strict=False):
            distance[here] += scaled[after][i] - scaled[before][i]
    return distance


def best_of(members: Mapping[int, Values], maximize: Sequence[bool], objective: int) -> int:
    """The member best in one objective."""
    return min(members, key=lambda n: (_loss(members[n], maximize)[objective], n))


def trim(members: Mapping[int, Values], maximize: Sequence[bool], keep: int,
         front_knee: int | None = None) -> list[int]:
    """The members kept when at most ``keep`` may stay, in the order of the rule: the knee
    first (``front_knee``, the whole front's, which is the sweep's best trial, when it is one
    of ``members``; else theirs), then the best member of each objective, then by crowding."""
    if not members:
        return []
    chosen = [front_knee if front_knee in members else knee(members, maximize)]
    chosen += [best_of(members, maximize, i) for i in range(len(maximize))]
    distance = crowding(members, maximize)
    chosen += sorted(members, key=lambda n: (-distance[n], n))
    return list(dict.fromkeys(chosen))[:keep]
