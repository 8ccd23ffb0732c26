"""A sampler that models a warm start's prior trials with the study's own.

Optuna's TPE and GP samplers read a study's finished trials through ``study._get_trials``
(and draw at random while fewer than ``n_startup_trials`` of them are finished). The
sampler is handed a view of the study whose trials are the prior ones
(:class:`hposweep.study.warm_start.SamplerPrior`) followed by the study's own; everything
else, writes included, goes to the study itself. Nothing is added to the study: its
trials, best trial, counts and budget are its own.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

from optuna.samplers import BaseSampler


class WithPrior(BaseSampler):
    """``sampler``, shown ``prior`` trials before the study's own."""

    def __init__(self, sampler: BaseSampler, prior: Sequence[Any]) -> None:
        self.sampler = sampler
        self.prior = list(prior)

    def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
        return self.sampler.infer_relative_search_space(_View(study, self.prior), trial)

    def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
        return self.sampler.sample_relative(_View(study, self.prior), trial, search_space)

    def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
        return self.sampler.sample_independent(_View(study, self.prior), trial, param_name,
                                               param_distribution)

    def before_trial(self, study: Any, trial: Any) -> None:
        self.sampler.before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Sequence[float] | None) -> None:
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()


class _View:
    """The study, its trials preceded by the prior ones."""

    def __init__(self, study: Any, prior: list[Any]) -> None:
        self._study = study
        self._prior = prior

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Container[Any] | None = None,
                    use_cache: bool = False) -> list[Any]:
        own = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        return [*(t for t in self._prior if states is None or t.state in states), *own]

    def get_trials(self, deepcopy: bool = True, states: Container[Any] | None = None) -> list[Any]:
        return self._get_trials(deepcopy=deepcopy, states=states)
