"""Simulated learning curves for ``pruning.py``: hposweep's custom-trainer contract, no
model, instant; one fold trains ``EPOCHS`` epochs, reporting each epoch's score and asking
the pruner after it.

A fold's plateau is ``_sim_trainer``'s fold score (a smooth function of the
hyperparameters, peak 0.90, a per-fold difficulty shared by every trial, trial-by-fold
noise). The curve rises towards it at a speed set by the learning rate (a low one is still
rising at the last epoch, a high one is there after two epochs), and over-fits (loses a
little every epoch after its second) with a high learning rate or little dropout. So
curves cross: a fast mediocre trial leads a slow good one for the first epochs. Each
epoch adds a little noise (sd 0.004). The fold's result is its last epoch's score
(``train.select_epoch: last``). ``EPOCHS_RUN`` counts the fold-epochs trained.
"""

from __future__ import annotations

import math
from typing import Any

from _sim_trainer import fold_draw, save, true_score

EPOCHS = 5
EPOCH_SD = 0.004
EPOCHS_RUN: dict[int, int] = {}  # trial number -> fold-epochs it trained


def _shape(params: dict[str, Any]) -> tuple[float, float]:
    """(speed, over-fitting per epoch after the second) of a trial's curves."""
    x = math.log10(params["learning_rate"] / 1.2e-4)  # -1.1 .. 0.9 in the benchmark's space
    speed = 0.9 * 10 ** (0.6 * x)
    overfit = 0.02 * max(0.0, x - 0.2) + 0.3 * max(0.0, 0.06 - params["dropout"])
    return speed, overfit


def _curve(plateau: float, params: dict[str, Any]) -> list[float]:
    speed, overfit = _shape(params)
    return [plateau * (1 - math.exp(-speed * (e + 1))) - overfit * max(0, e - 1)
            for e in range(EPOCHS)]


def true_final(params: dict[str, Any]) -> float:
    """The fold result a trial would get without any noise: what a sweep's best is worth."""
    return _curve(true_score(params), params)[-1]


def epoch_scores(params: dict[str, Any], fold: int) -> list[float]:
    """Fold ``fold``'s score after each epoch (deterministic in the params and fold)."""
    plateau, rng = fold_draw(params, fold)
    return [v + rng.gauss(0.0, EPOCH_SD) for v in _curve(plateau, params)]


def fold_results(params: dict[str, Any], folds: int) -> list[float]:
    """The trial's result on folds 0..folds-1, without counting a training."""
    return [epoch_scores(params, k)[-1] for k in range(folds)]


def curves(params: dict[str, Any], data: Any, ctx: Any) -> dict[str, float]:
    """The hposweep trainer: reports each epoch, stops when the pruner says so."""
    from hposweep.api import Pruned

    save(params, ctx)
    scores = epoch_scores(params, ctx.fold or 0)
    for epoch, score in enumerate(scores):
        EPOCHS_RUN[ctx.trial_number] = EPOCHS_RUN.get(ctx.trial_number, 0) + 1
        ctx.report(score, epoch)
        if ctx.should_prune():
            raise Pruned(f"pruned: score={score:.4f}")
    return {"score": scores[-1]}
