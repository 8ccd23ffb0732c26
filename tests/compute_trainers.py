"""Instant trainers for the compute-saving tests (fold pruning, warm starts, budgets).

Same contract as the built-in trainer: ``(params, data, ctx) -> metrics``.
"""

from __future__ import annotations

import json
import os
import time

# Fold k is easier or harder by the same amount for every trial: fold scores pair across
# trials, as real folds (the same seeded splits) do.
FOLD_OFFSETS = (0.0, 0.02, -0.01, 0.01, -0.02)


def fold_scored(params, data, ctx):
    """score = 1 - (x - 0.3)^2 + the fold's offset, reported each epoch of train.epochs
    (rising to it by $FOLD_RISE an epoch when set: a learning curve);
    appends ``trial fold`` to $FOLD_LOG (when set) so a test sees which folds trained."""
    score = 1.0 - (params["x"] - 0.3) ** 2 + FOLD_OFFSETS[ctx.fold or 0]
    epochs, rise = ctx.config.train.epochs, float(os.environ.get("FOLD_RISE", "0"))
    for epoch in range(epochs):
        ctx.report(score - rise * (epochs - 1 - epoch), epoch)
    if os.environ.get("FOLD_LOG"):
        with open(os.environ["FOLD_LOG"], "a") as log:
            log.write(f"{ctx.trial_number} {ctx.fold}\n")
    if ctx.checkpoint_dir is not None:
        ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (ctx.checkpoint_dir / "weights.json").write_text(json.dumps(params))
    return {"score": score}


def flat(params, data, ctx):
    """The same score whatever the parameters: nothing ever improves on the first trial."""
    return {"score": 0.5}


def improving(params, data, ctx):
    """Each trial beats the one before it (by 0.1): the objective never stops improving."""
    return {"score": float(ctx.trial_number) / 10}


def timed(params, data, ctx):
    """A trial of $TRIAL_SECONDS (default 0.5) of wall time and no CPU: for budgets."""
    time.sleep(float(os.environ.get("TRIAL_SECONDS", "0.5")))
    return {"score": params["x"]}
