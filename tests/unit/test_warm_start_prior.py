"""A warm start's prior (:class:`hposweep.study.warm_start.SamplerPrior`): the source's
finished trials that fit this search space, recorded once with the queued sets, handed
to the sampler as trials older than any of this study's, their values shifted by what
the warm-started sets scored here; none when the two studies optimize differently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution

from hposweep.config.loading import load
from hposweep.results import WARM_START_PRIOR_ATTR
from hposweep.study.space import suggest
from hposweep.study.storage import make_storage
from hposweep.study.warm_start import SamplerPrior, queue_first_trials, recorded_prior
from tests.helpers import FAKE_CONFIG, fake_config, opened

# This study's x is [0.2, 1]; the source's 0.1 does not fit it, its trial without x lacks it.
SOURCE = {0.3: 0.8, 0.5: 0.7, 0.9: 0.6, 0.1: 0.5}


def set_up(tmp_path: Path, direction: str) -> tuple[Any, Any, list[str], list[str]]:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    source = optuna.create_study(study_name="src", storage=url, direction=direction)
    for x, value in SOURCE.items():
        source.add_trial(optuna.trial.create_trial(
            params={"x": x}, value=value, distributions={"x": FloatDistribution(0.0, 1.0)}))
    source.add_trial(optuna.trial.create_trial(
        params={"y": 0.5}, value=0.4, distributions={"y": FloatDistribution(0.0, 1.0)}))
    cfg = load(fake_config(tmp_path, FAKE_CONFIG), [
        "search_space.x.low=0.2", "study.sampler.name=tpe",
        f"study.warm_start={{from: '{url}#src', top_k: 2}}"]).config
    storage = make_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(study_name="here", storage=storage, direction="maximize")
    info: list[str] = []
    warn: list[str] = []
    queue_first_trials(cfg, opened(study, storage), info.append, warn.append)
    return cfg, study, info, warn


def test_the_prior_is_the_fitting_source_trials_shifted_by_what_the_warm_sets_scored_here(
        tmp_path: Path) -> None:
    cfg, study, info, _ = set_up(tmp_path, "maximize")
    assert "warm start: the tpe sampler models 3 of the 5 finished trials of 'src' from the " \
           "first trial on (2 left out: they lack a parameter of this search space or a value " \
           "it can take)" in info
    prior = SamplerPrior(cfg, recorded_prior(study)).trials(study.get_trials())
    assert [(t.number, t.params, t.value) for t in prior] == \
        [(-3, {"x": 0.3}, 0.8), (-2, {"x": 0.5}, 0.7), (-1, {"x": 0.9}, 0.6)]
    assert all(t.state.name == "COMPLETE" for t in prior)
    assert {d for t in prior for d in t.distributions.values()} == {FloatDistribution(0.2, 1.0)}
    assert not study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)), "nothing added"
    for value_here in (0.75, 0.6):  # the queued sets (the source's x=0.3, then x=0.5)
        trial = study.ask()
        suggest(trial, cfg.search_space)
        study.tell(trial, value_here)
    shifted = SamplerPrior(cfg, recorded_prior(study)).trials(study.get_trials())
    shift = -0.075  # the median of 0.75 - 0.8 and 0.6 - 0.7
    assert [t.value for t in shifted] == pytest.approx([v + shift for v in (0.8, 0.7, 0.6)])
    narrower = load(fake_config(tmp_path, FAKE_CONFIG), ["search_space.x.low=0.4"]).config
    assert [t.params for t in SamplerPrior(narrower, recorded_prior(study)).trials(study.get_trials())] \
        == [{"x": 0.5}, {"x": 0.9}], "a resume whose search space no longer takes x=0.3"
    grown = load(fake_config(tmp_path, FAKE_CONFIG), ["search_space.y={type: float, low: 0, high: 1}"])
    assert SamplerPrior(grown.config, recorded_prior(study)).trials(study.get_trials()) == []


def test_a_source_that_optimizes_the_other_way_is_not_modelled(tmp_path: Path) -> None:
    cfg, study, _, warn = set_up(tmp_path, "minimize")
    assert ("warm start: the values of 'src' are not given to the sampler (goal minimize, "
            "this study maximize)") in warn
    assert WARM_START_PRIOR_ATTR not in study.user_attrs
    assert SamplerPrior(cfg, recorded_prior(study)).trials(study.get_trials()) == []


def test_the_prior_a_trial_loop_keeps_is_the_prior_made_afresh_at_every_admission(
        tmp_path: Path) -> None:
    """The trial loop fits the records once (:class:`SamplerPrior`) and makes the trials again
    only when a shift changes: at each step it hands the sampler what a new :class:`SamplerPrior`
    makes from scratch (the same numbers, parameters, distributions and values), and the
    same trials while no shift changed."""
    cfg, study, _, _ = set_up(tmp_path, "maximize")
    kept = SamplerPrior(cfg, recorded_prior(study))

    def same_as_afresh() -> list[Any]:
        prior = kept.trials(study.get_trials())
        afresh = SamplerPrior(cfg, recorded_prior(study)).trials(study.get_trials())
        assert [(t.number, t.state, t.params, t.distributions, t.value) for t in prior] == \
            [(t.number, t.state, t.params, t.distributions, t.value) for t in afresh]
        return prior

    before = same_as_afresh()
    values = {}
    for value_here in (0.75, 0.6, 0.5):  # the 2 queued sets, then a sampled trial
        trial = study.ask()
        suggest(trial, cfg.search_space)
        study.tell(trial, value_here)
        values[value_here] = [t.value for t in same_as_afresh()]
    assert values[0.75] == pytest.approx([v - 0.05 for v in (0.8, 0.7, 0.6)])
    assert values[0.6] == values[0.5] == pytest.approx([v - 0.075 for v in (0.8, 0.7, 0.6)])
    assert [t.value for t in before] == [0.8, 0.7, 0.6], "a made prior is never changed"
    unchanged = kept.trials(study.get_trials())
    assert unchanged is kept.trials(study.get_trials()), "no shift changed: not made again"
