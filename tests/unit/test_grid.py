"""The grid sampler under the trial loop's locked admission: each point once, whatever the
workers, retries and queued parameter sets, and a used-up grid ends the study.

Each "worker" is a TrialLoop on its own storage object over one SQLite file (its own cache,
as in another process); trials are admitted and left RUNNING, as workers hold them."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import optuna
import pytest

from hposweep.config.loading import load
from hposweep.results import TRIAL_ATTR
from hposweep.study.loop import Stop, TrialLoop
from hposweep.study.space import suggest
from hposweep.study.storage import make_storage
from tests.helpers import FAKE_CONFIG, dead_owner, fake_config, opened

STUDY = "grid"
# x: 0, 0.5, 1 and y: a, b: a grid of 6 points
SPACE = ["study.sampler.name=grid", "search_space.x.step=0.5",
         "search_space.y={type: categorical, choices: [a, b]}"]


def cfg_of(tmp_path: Path, *overrides: str) -> Any:
    return load(fake_config(tmp_path, FAKE_CONFIG), [*SPACE, "study.max_trials=20", *overrides]).config


def worker(cfg: Any, url: str) -> TrialLoop:
    storage = make_storage(url)
    study = optuna.load_study(study_name=STUDY, storage=storage)
    return TrialLoop(cfg, opened(study, storage), contextlib.nullcontext(), run_trial=None,
                     after_trial=None, on_recovered=lambda trial: None, on_lost=None)


def admit(loop: TrialLoop) -> Any:
    """Admit a trial and draw its parameters, as the trial's run does first."""
    trial = loop._admit()
    if not isinstance(trial, Stop):
        suggest(trial, loop.cfg.search_space)
    return trial


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name=STUDY, storage=make_storage(url))
    return url


def test_workers_admitted_in_turn_hold_each_point_once_then_the_grid_is_used_up(
        tmp_path: Path, url: str) -> None:
    cfg = cfg_of(tmp_path)
    workers = [worker(cfg, url), worker(cfg, url)]
    trials = [admit(workers[n % 2]) for n in range(6)]
    points = {(t.params["x"], t.params["y"]) for t in trials}
    assert points == {(x, y) for x in (0.0, 0.5, 1.0) for y in "ab"}, "each point once"
    stop = workers[0]._admit()
    assert isinstance(stop, Stop) and stop.reason == "grid_exhausted", "no point left to start"
    assert stop.message == "the grid is exhausted (6 points)"
    assert len(optuna.load_study(study_name=STUDY, storage=url).trials) == 6, "no surplus trial"


@pytest.mark.parametrize("seed", ["0", "null"])
def test_a_study_runs_its_grid_in_one_order_in_every_process(tmp_path: Path, seed: str) -> None:
    cfg = cfg_of(tmp_path, f"study.sampler.seed={seed}")
    orders = []
    for name in ("first", "second"):
        url = f"sqlite:///{tmp_path / name}.db"
        optuna.create_study(study_name=STUDY, storage=make_storage(url))
        orders.append([tuple(admit(worker(cfg, url)).params.values()) for _ in range(6)])
    assert orders[0] == orders[1]


def test_a_dead_trials_retry_runs_the_point_it_held(tmp_path: Path, url: str) -> None:
    cfg = cfg_of(tmp_path)
    loop = worker(cfg, url)
    dead = loop._admit()  # killed before its parameters were drawn
    dead.set_user_attr(TRIAL_ATTR, {"owner": dead_owner()})
    trials = [admit(loop) for _ in range(6)]
    assert trials[0].user_attrs["retried_from"] == dead.number
    assert len({tuple(t.params.values()) for t in trials}) == 6
    assert isinstance(loop._admit(), Stop)


def test_queued_sets_take_their_points_and_the_grid_the_rest(tmp_path: Path, url: str) -> None:
    """A queued set that names every parameter holds its point; one that names some takes
    the rest from a free point that agrees (a warm start whose other values were dropped)."""
    cfg = cfg_of(tmp_path)
    study = optuna.load_study(study_name=STUDY, storage=url)
    study.enqueue_trial({"x": 0.5, "y": "b"})
    study.enqueue_trial({"y": "b"})
    trials = [admit(worker(cfg, url)) for _ in range(6)]
    assert (trials[0].params, trials[1].params["y"]) == ({"x": 0.5, "y": "b"}, "b")
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6, "no point twice"
    assert isinstance(worker(cfg, url)._admit(), Stop)
