"""Which epoch of a fold counts (``train.select_epoch``) and when a fold stops early
(``train.early_stopping``).

With ``select_epoch: best`` the best epoch's weights are kept **in memory, as a CPU copy
of the model's state dict**, replaced whenever an epoch improves. Why not staged on disk:
a fine-tuned encoder is at most a few GB (DeBERTa-v3-large: 1.7 GB in float32), which a
training host's RAM holds; the copy takes well under a second per improving epoch, while
writing it would cost a disk write per improvement and leave files a crash must clean.
For a crash, the resume state (``training/state.py``) writes those kept weights beside
the current ones, so a resumed fold still ends with its best epoch's model.

An improvement must beat the best value by more than ``min_delta`` in the study's
direction; the best epoch is the first epoch that reached the best value so counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class BestEpoch:
    """The best epoch so far: its index, reported value and metrics (weights apart)."""

    epoch: int
    value: float
    metrics: dict[str, float] = field(default_factory=dict)


class EpochSelector:
    """Follows one fold's epochs: the best so far and whether to stop."""

    def __init__(self, maximize: bool, min_delta: float, patience: int | None) -> None:
        self.maximize = maximize
        self.min_delta = min_delta
        self.patience = patience
        self.best: BestEpoch | None = None
        self.best_weights: dict[str, Any] | None = None  # CPU tensors; None: the model's own
        self.since_best = 0

    def improves(self, value: float) -> bool:
        if self.best is None:
            return True
        gain = value - self.best.value if self.maximize else self.best.value - value
        return gain > self.min_delta

    def observe(self, epoch: int, value: float, metrics: dict[str, float], model: Any,
                keep_weights: bool) -> None:
        """Record an evaluated epoch; copy the model's weights when it is the new best."""
        if self.improves(value):
            self.best = BestEpoch(epoch, value, dict(metrics))
            self.since_best = 0
            if keep_weights:
                self.best_weights = cpu_copy(model)
        else:
            self.since_best += 1

    def should_stop(self) -> bool:
        return self.patience is not None and self.since_best >= self.patience

    def restore(self, best: BestEpoch | None, since_best: int, weights: dict[str, Any] | None
                ) -> None:
        """The state a resumed fold had saved."""
        self.best, self.since_best, self.best_weights = best, since_best, weights


def cpu_copy(model: Any) -> dict[str, Any]:
    """The model's weights, copied to the CPU (its later steps leave them as they are)."""
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in model.state_dict().items()}


def selector_for(cfg: Any) -> EpochSelector:
    stopping = cfg.train.early_stopping
    return EpochSelector(cfg.study.objective_goal == "maximize",
                         stopping.min_delta if stopping is not None else 0.0,
                         stopping.patience if stopping is not None else None)
