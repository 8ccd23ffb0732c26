"""The Pareto front's arithmetic on known values: domination, the knee, crowding distance,
and the documented trimming rule (the knee, extremes of each objective, then crowding)."""

from __future__ import annotations

import math

import pytest

from hposweep.objectives.pareto import crowding, dominates, front, knee, normalised, trim

UP_DOWN = [True, False]  # maximize score, minimize cost
# Trial -> (score, cost). 1..5 are the front; 6 is dominated by 2.
MEMBERS = {1: (0.9, 0.9), 2: (0.8, 0.5), 3: (0.6, 0.3), 4: (0.3, 0.2), 5: (0.1, 0.1),
           6: (0.5, 0.6)}
FRONT = {n: v for n, v in MEMBERS.items() if n != 6}


def test_domination_follows_each_objectives_goal() -> None:
    assert dominates(MEMBERS[2], MEMBERS[6], UP_DOWN)
    assert not dominates(MEMBERS[6], MEMBERS[2], UP_DOWN)
    assert not dominates(MEMBERS[1], MEMBERS[5], UP_DOWN)  # a trade-off: neither
    assert not dominates((0.5, 0.5), (0.5, 0.5), UP_DOWN)  # equal: neither
    assert dominates((0.1, 0.1), (0.5, 0.6), [False, False])


def test_the_front_is_the_non_dominated_members() -> None:
    assert front(MEMBERS, UP_DOWN) == [1, 2, 3, 4, 5]


def test_normalised_puts_the_best_of_each_objective_at_zero() -> None:
    scaled = normalised(FRONT, UP_DOWN)
    assert scaled[1] == pytest.approx((0.0, 1.0))
    assert scaled[3] == pytest.approx((0.375, 0.25))
    assert scaled[5] == pytest.approx((1.0, 0.0))
    assert normalised({1: (0.5, 0.2), 2: (0.5, 0.4)}, UP_DOWN)[2] == (0.0, 1.0)  # no range: 0


def test_the_knee_is_closest_to_the_utopia_point() -> None:
    # distances: 1 -> 1.0, 2 -> 0.515, 3 -> 0.451, 4 -> 0.760, 5 -> 1.0
    assert knee(FRONT, UP_DOWN) == 3
    assert knee({7: (0.5, 0.5), 4: (0.5, 0.5)}, UP_DOWN) == 4  # a tie: the lower number
    assert knee({}, UP_DOWN) is None


def test_crowding_distance_gives_the_ends_infinity_and_sums_neighbour_gaps() -> None:
    distance = crowding(FRONT, UP_DOWN)
    assert distance[1] == distance[5] == math.inf
    assert distance[2] == pytest.approx(0.375 + 0.75)
    assert distance[3] == pytest.approx(0.625 + 0.375)
    assert distance[4] == pytest.approx(0.625 + 0.25)


@pytest.mark.parametrize(("keep", "kept"), [
    (1, [3]),              # the knee first: the sweep's best trial keeps its checkpoint
    (2, [3, 1]),           # then the best of each objective, in order
    (3, [3, 1, 5]),
    (4, [3, 1, 5, 2]),     # then by crowding distance: 2 (1.125) before 4 (0.875)
    (5, [3, 1, 5, 2, 4]),
    (9, [3, 1, 5, 2, 4]),  # all of them when they fit
])
def test_trim_keeps_the_knee_then_extremes_then_by_crowding(keep: int, kept: list[int]) -> None:
    assert trim(FRONT, UP_DOWN, keep) == kept


def test_trim_puts_the_whole_fronts_knee_first_when_it_is_a_candidate() -> None:
    held = {n: FRONT[n] for n in (1, 2, 5)}  # 3 (the front's knee) not among them: theirs first
    assert trim(held, UP_DOWN, 1, front_knee=3) == [knee(held, UP_DOWN)] == [2]
    assert trim(FRONT, UP_DOWN, 1, front_knee=4) == [4]


def test_trim_of_three_objectives_and_of_nothing() -> None:
    three = {0: (1.0, 1.0, 1.0), 1: (0.0, 0.0, 0.0), 2: (0.5, 0.5, 0.5), 3: (0.2, 0.9, 0.1)}
    maximize = [True, False, True]
    # 0 is the best of objectives 0 and 2, 1 of objective 1; the knee is 2 (distance 0.87)
    assert knee(three, maximize) == 2
    assert trim(three, maximize, 2) == [2, 0]
    assert trim(three, maximize, 3) == [2, 0, 1]
    assert trim({}, UP_DOWN, 3) == []
