"""The pruners that read a k-fold trial's running estimates, and the fold-level test that
runs between its folds (``study.pruner.folds``).

With the epoch-level pruners a trial reports, at fold ``k``'s epoch ``e`` (step
``k × epochs + e``), the running estimate of its final objective
(:func:`hposweep.sweep.trial.running_estimate`: the mean of its finished folds' scores
with the current fold's score predicted from its epoch). Every trial's value at one step
is then the same kind of number, so any step of any fold can prune. Optuna's
``MedianPruner`` compares the trial's *best* value over all its steps, though, and in fold
0 the estimate is the epoch's score, lower at its start than the finished fold's score
later: :class:`FoldMedianPruner` gives it the steps of the current fold only, and in fold
0 compares with every trial that reached the step, not the completed ones alone (its
docstring says why). Successive halving and Hyperband compare the value at the step
itself: Optuna's own.

The fold-level test (:class:`FoldTest`) is not the study's pruner: Optuna keeps one
pruner and one sequence of intermediate values per trial, and those are the estimates.
Between folds the trial asks the test itself, which runs Optuna's ``WilcoxonPruner`` on
the fold scores (the ``fold_values`` user attribute) of the trial and of the best trial.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import optuna

from hposweep.results import FOLD_VALUES_ATTR
from hposweep.study.space import epochs_of


def fold_view(trial: Any, epochs: int) -> Any:
    """``trial`` with only the intermediate values of the fold its last step is in."""
    view = copy.copy(trial)
    if trial.last_step is not None:
        start = trial.last_step - trial.last_step % epochs
        view.intermediate_values = {s: v for s, v in trial.intermediate_values.items()
                                    if s >= start}
    return view


# In fold 0 a trial is pruned below this percentile of the other trials that reached the
# step. Measured on benchmarks/pruning.py's crossing curves with the default pruner
# settings (when fold 0's start-up still counted completed trials): 25 kept the best in
# every seed and was the cheapest; 10 dearer, 50 lost it in a seed, and the completed
# trials alone (the median rule's set) in 2 to 4 of 5.
FIRST_FOLD_PERCENTILE = 25.0


class FoldMedianPruner(optuna.pruners.MedianPruner):
    """Optuna's median rule on the current fold's steps: the trial's best estimate in this
    fold so far against the median of the completed trials' estimates at this step.
    ``epochs``: the steps of a fold (a trial's own ``epochs`` parameter overrides it);
    ``folds``: the trial's folds (1 without k-fold).

    With k-fold, in fold 0 the estimate is the epoch's own score, which, where learning
    curves cross, ranks how fast a trial learns as much as how good it ends; and the
    completed trials are the survivors, whose first epochs are the fast ones, so a median
    over them prunes every slower trial, good ones included, and no slower trial completes
    to lower it. There the trial's best value in fold 0 so far is compared instead with the
    values of every other trial that reached the step (completed, pruned or running: the
    rung of asynchronous successive halving), and it is pruned below their 25th percentile
    (:data:`FIRST_FOLD_PERCENTILE`, interpolated: with few trials there, the middle one of
    three can be below it): a bad trial still stops at its first epoch. (With ``epochs``
    searched, only trials whose fold 0 the step is in count.) Its start-up counts the
    trials it compares with: it prunes once ``n_startup_trials`` other trials (at least one)
    reached the step, whether or not any has completed (asynchronous successive halving's
    grace), so the first trials need not run every fold before a bad one stops. From fold 1 on the
    estimate predicts the trial's end from its own fold-0 curve, and the median rule
    applies, its start-up (``n_startup_trials`` completed trials) included. The warm-up
    is the median rule's."""

    def __init__(self, epochs: int, folds: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._epochs = epochs
        self._k_fold = folds > 1  # without k-fold every step is the median rule's
        self._first_fold = optuna.pruners.PercentilePruner(  # Optuna's: the top share kept
            100.0 - FIRST_FOLD_PERCENTILE, **{**kwargs, "n_startup_trials": 0})

    def prune(self, study: Any, trial: Any) -> bool:
        epochs = epochs_of(trial.params, self._epochs)
        view = fold_view(trial, epochs)
        if not self._k_fold or trial.last_step is None or trial.last_step >= epochs:
            return bool(super().prune(study, view))
        step = trial.last_step
        others = [t for t in study.get_trials(deepcopy=False, states=_REPORTING)
                  if t.number != trial.number and step in t.intermediate_values
                  and step < epochs_of(t.params, self._epochs)]  # in their fold 0 too
        if not others or len(others) < self._n_startup_trials:
            return False
        return bool(self._first_fold.prune(_Compared(study.direction, others), view))


_REPORTING = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
              optuna.trial.TrialState.RUNNING)


class _Compared:
    """What ``PercentilePruner.prune`` reads of a study: its direction and the trials it
    compares with (asked for as the completed ones: here every other trial that reached
    the step)."""

    def __init__(self, direction: Any, trials: list[Any]) -> None:
        self.direction = direction
        self._trials = trials

    def get_trials(self, deepcopy: bool = False, states: Any = None) -> list[Any]:
        return self._trials


class FoldTest:
    """``study.pruner.folds: wilcoxon``: after each fold but the last, prune a trial whose
    fold scores are worse than the best trial's on the same folds (Optuna's
    ``WilcoxonPruner``, its safety rule included: a trial whose mean so far is at least the
    best's is never pruned)."""

    def __init__(self, p_threshold: float, n_startup_steps: int) -> None:
        with warnings.catch_warnings():  # "experimental": hposweep pins the Optuna it tests
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._wilcoxon = optuna.pruners.WilcoxonPruner(p_threshold=p_threshold,
                                                           n_startup_steps=n_startup_steps)

    def prune(self, study: Any, trial: Any) -> bool:
        return bool(self._wilcoxon.prune(_ByFolds(study), _by_folds(trial)))


def _by_folds(trial: Any) -> Any:
    """``trial`` whose intermediate values are its fold scores at step = fold index."""
    view = copy.copy(trial)
    view.intermediate_values = dict(enumerate(trial.user_attrs.get(FOLD_VALUES_ATTR) or []))
    return view


class _ByFolds:
    """What ``WilcoxonPruner.prune`` reads of a study (its direction and best trial),
    with the best trial's fold scores as its intermediate values."""

    def __init__(self, study: Any) -> None:
        self.direction = study.direction
        self._study = study

    @property
    def best_trial(self) -> Any:
        return _by_folds(self._study.best_trial)  # ValueError without one: never prunes
