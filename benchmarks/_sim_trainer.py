"""A simulated trainer for the compute benchmarks (``pruning.py``, ``warm_start.py``):
hposweep's custom-trainer contract (``hposweep/api.py``), no model, instant.

A fold's score is a smooth function of the hyperparameters (the "true" score, peak 0.90)
plus fold noise of a realistic size for k-fold F1: a difficulty per fold shared by every
trial (sd 0.015: the folds are the same seeded splits for every trial) and a
trial-by-fold part (sd 0.006; ``SIM_TRIAL_FOLD_SD`` in the environment changes it).
``CALLS`` counts the fold trainings run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from typing import Any

FOLD_SD = 0.015
TRIAL_FOLD_SD = float(os.environ.get("SIM_TRIAL_FOLD_SD", "0.006"))  # a sensitivity check
_FOLD_EFFECT = [random.Random(1000 + k).gauss(0.0, FOLD_SD) for k in range(10)]
CALLS = 0
# The neighbouring objective of the warm-start benchmark: the optimum moved a little
# (another backbone or an earlier data set: lr x1.6, dropout +0.04, warmup -0.03).
NEIGHBOUR_SHIFT = {"learning_rate": 1.6, "dropout": 0.04, "warmup_ratio": -0.03}


def true_score(params: dict[str, Any], shift: dict[str, float] | None = None) -> float:
    shift = shift or {}
    lr_opt = 1.2e-4 * shift.get("learning_rate", 1.0)
    lr = math.log10(params["learning_rate"] / lr_opt)
    dropout = params["dropout"] - (0.12 + shift.get("dropout", 0.0))
    warmup = params["warmup_ratio"] - (0.08 + shift.get("warmup_ratio", 0.0))
    return 0.90 - 0.10 * lr ** 2 - 0.8 * dropout ** 2 - 1.2 * warmup ** 2


def fold_draw(params: dict[str, Any], fold: int,
              shift: dict[str, float] | None = None) -> tuple[float, random.Random]:
    """The trial's score on ``fold`` (deterministic in the params and fold), and the
    random stream it was drawn from, for any further noise of that fold."""
    rng = random.Random(hashlib.sha256(repr((sorted(params.items()), fold)).encode()).digest())
    return true_score(params, shift) + _FOLD_EFFECT[fold] + rng.gauss(0.0, TRIAL_FOLD_SD), rng


def _fold_score(params: dict[str, Any], fold: int, shift: dict[str, float] | None) -> float:
    return fold_draw(params, fold, shift)[0]


def save(params: dict[str, Any], ctx: Any) -> None:
    """The "model" the sweep may keep: the params, in the trial's checkpoint dir."""
    if ctx.checkpoint_dir is not None:
        ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (ctx.checkpoint_dir / "params.json").write_text(json.dumps(params))


def fold_scores(params: dict[str, Any], folds: int) -> list[float]:
    """A trial's scores on folds 0..folds-1, without counting a training."""
    return [_fold_score(params, k, None) for k in range(folds)]


def _train(params: dict[str, Any], ctx: Any, shift: dict[str, float] | None) -> dict[str, float]:
    global CALLS
    CALLS += 1
    save(params, ctx)
    return {"score": _fold_score(params, ctx.fold or 0, shift)}


def fold_score(params: dict[str, Any], data: Any, ctx: Any) -> dict[str, float]:
    return _train(params, ctx, None)


def neighbour(params: dict[str, Any], data: Any, ctx: Any) -> dict[str, float]:
    return _train(params, ctx, NEIGHBOUR_SHIFT)
