"""The built-in trainer: a plain PyTorch loop over a transformers model.

AdamW with linear warmup and decay, gradient clipping, one evaluation per epoch
(reported for pruning), seeded so that a CPU run is reproducible.
"""

from __future__ import annotations

import math
import random
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hposweep.api import Example, FoldData, Pruned, TrialContext, TrialFailed
from hposweep.config import BUILTIN_HYPERPARAMETERS, SweepConfig
from hposweep.faults import kill_point
from hposweep.training import state as training_state
from hposweep.training.cost_metrics import cost_metrics
from hposweep.training.cost_metrics import requested as cost_metrics_requested
from hposweep.training.model import build_model, load_tokenizer
from hposweep.training.state import Progress

IGNORE_INDEX = -100  # label id the loss skips: special tokens and non-first sub-tokens


def hyperparameters(cfg: SweepConfig, params: Mapping[str, Any]) -> dict[str, Any]:
    """The trial's sampled values over the config's ``train`` defaults."""
    resolved = {name: getattr(cfg.train, name) for name in BUILTIN_HYPERPARAMETERS}
    resolved.update(params)
    resolved["batch_size"] = int(resolved["batch_size"])
    resolved["epochs"] = int(resolved["epochs"])
    return resolved


def resolve_device(requested: str) -> str:
    if requested != "auto":
        return requested  # no torch import: a custom trainer may not use torch at all
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Setup:
    """Everything one fold's training needs, built from the trial's hyperparameters."""

    hp: dict[str, Any]
    device: str
    tokenizer: Any
    model: Any
    loader: Any
    optimizer: Any
    scheduler: Any
    validation_set: list[dict[str, Any]]
    token_task: bool


def prepare(params: dict[str, Any], data: FoldData, ctx: TrialContext) -> Setup:
    import torch
    from transformers import get_linear_schedule_with_warmup

    cfg = ctx.config
    hp = hyperparameters(cfg, params)
    device = resolve_device(cfg.train.device)
    seed_everything(ctx.seed)
    tokenizer = load_tokenizer(cfg, ctx.backbone, data.train + data.validation)
    model = build_model(cfg, ctx.backbone, data.labels, tokenizer, hp["dropout"]).to(device)
    label_ids = {label: i for i, label in enumerate(data.labels)}
    token_task = cfg.data.task == "token-classification"
    encode = _encode_tokens if token_task else _encode_sequences
    train_set = encode(tokenizer, data.train, label_ids, cfg.data.max_length)
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=hp["batch_size"], shuffle=True,
        generator=torch.Generator().manual_seed(ctx.seed),
        collate_fn=lambda batch: _pad(batch, tokenizer.pad_token_id, token_task),
    )
    # foreach: one fused op over all tensors; on CPU torch defaults to a per-tensor loop.
    optimizer = torch.optim.AdamW(_parameter_groups(model, hp["weight_decay"]),
                                  lr=hp["learning_rate"], foreach=True)
    total_steps = hp["epochs"] * len(loader)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(hp["warmup_ratio"] * total_steps), total_steps)
    return Setup(hp, device, tokenizer, model, loader, optimizer, scheduler,
                 encode(tokenizer, data.validation, label_ids, cfg.data.max_length), token_task)


def train(params: dict[str, Any], data: FoldData, ctx: TrialContext) -> dict[str, float]:
    """Train one fold; resume from ``ctx.resume_dir`` when a saved state is there."""
    import torch

    s = prepare(params, data, ctx)
    generator = s.loader.generator
    progress, epoch_start_rng = _resume(s, ctx)
    for epoch, value in progress.history:  # the retried trial reports what its predecessor did
        ctx.report(value, epoch)
    every_steps = ctx.config.train.resume_every_steps
    for epoch in range(progress.epoch, s.hp["epochs"]):
        if progress.step:
            generator.set_state(epoch_start_rng)  # same batch order as the interrupted epoch
        epoch_start_rng = generator.get_state()
        s.model.train()
        for step, batch in enumerate(s.loader):
            if step < progress.step:
                continue  # done before the interruption
            loss = s.model(**{k: v.to(s.device) for k, v in batch.items()}).loss
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise TrialFailed(f"training loss is {loss_value} at epoch {epoch + 1}, step {step}")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(s.model.parameters(), ctx.config.train.max_grad_norm,
                                           foreach=True)
            s.optimizer.step()
            s.scheduler.step()
            s.optimizer.zero_grad()
            progress.train_loss += loss_value
            progress.step = step + 1
            if every_steps and progress.step % every_steps == 0 and progress.step < len(s.loader):
                _save_state(s, ctx, epoch_start_rng, progress)
        metrics = evaluate(s.model, s.validation_set, data.labels, s.tokenizer.pad_token_id,
                           s.token_task, s.hp["batch_size"], s.device)
        metrics["train_loss"] = progress.train_loss / max(1, len(s.loader))
        value = metrics[ctx.objective_metric]
        progress = Progress(epoch + 1, 0, 0.0, [*progress.history, (epoch, value)], metrics)
        every_epochs = ctx.config.train.resume_every_epochs
        if every_epochs and (epoch + 1) % every_epochs == 0 and epoch + 1 < s.hp["epochs"]:
            _save_state(s, ctx, epoch_start_rng, progress)  # before report: a kill there loses nothing
        ctx.log_metrics(metrics, epoch)
        ctx.report(value, epoch)
        if ctx.should_prune():
            raise Pruned(f"pruned after epoch {epoch + 1}: {ctx.objective_metric}={value:.4f}")
    if ctx.checkpoint_dir is not None:
        save_checkpoint(s.model, s.tokenizer, ctx)
    costs = cost_metrics_requested(ctx.config)
    if not costs:
        return progress.metrics
    first = _pad(s.validation_set[: s.hp["batch_size"]], s.tokenizer.pad_token_id, s.token_task)
    return {**progress.metrics, **cost_metrics(s.model, first, s.device, costs)}


def _resume(s: Setup, ctx: TrialContext) -> tuple[Progress, Any]:
    """The saved progress and epoch-start RNG state, or a fresh start."""
    fresh = Progress(), s.loader.generator.get_state()
    if ctx.resume_dir is None:
        return fresh
    try:
        restored = training_state.load(ctx.resume_dir, s.model, s.optimizer, s.scheduler,
                                       s.loader.generator)
    except training_state.StateRefused as exc:
        ctx.warn(f"trial {ctx.trial_number}: resume state in {ctx.resume_dir} refused ({exc}); "
                 "training this fold from the start")
        shutil.rmtree(ctx.resume_dir, ignore_errors=True)
        return fresh
    return restored if restored is not None else fresh


def _save_state(s: Setup, ctx: TrialContext, epoch_start_rng: Any, progress: Progress) -> None:
    """Save the resume state; a failed save (a full disk) is a warning and training goes on."""
    if ctx.resume_dir is None:
        return
    try:
        training_state.save(ctx.resume_dir, s.model, s.optimizer, s.scheduler,
                            s.loader.generator, epoch_start_rng, progress)
    except training_state.StateNotSaved as exc:
        _warn_once_per_trial(ctx, f"trial {ctx.trial_number}: resume state not saved ({exc}); "
                                  "training goes on without it")
        return
    kill_point(f"state:trial{ctx.trial_number}:epoch{progress.epoch}:step{progress.step}")


# (resume dir of the trial, trial number): a full disk fails every save of every fold, and
# each fold is a call of its own; one warning per trial is enough.
_WARNED_TRIALS: set[tuple[Path, int]] = set()


def _warn_once_per_trial(ctx: TrialContext, message: str) -> None:
    assert ctx.resume_dir is not None
    key = (ctx.resume_dir.parent, ctx.trial_number)
    if key not in _WARNED_TRIALS:
        _WARNED_TRIALS.add(key)
        ctx.warn(message)


def save_checkpoint(model: Any, tokenizer: Any, ctx: TrialContext) -> None:
    """``save_pretrained`` (safetensors) plus the tokenizer into ``ctx.checkpoint_dir``.

    A failed write (disk full, permissions; safetensors raises its own error type)
    removes the partial dir and warns: the trial still counts, the previous best stays.
    """
    assert ctx.checkpoint_dir is not None
    try:
        model.save_pretrained(ctx.checkpoint_dir)
        tokenizer.save_pretrained(ctx.checkpoint_dir)
    except Exception as exc:
        shutil.rmtree(ctx.checkpoint_dir, ignore_errors=True)
        ctx.warn(f"trial {ctx.trial_number}: checkpoint not saved ({type(exc).__name__}: {exc})")


def evaluate(model: Any, dataset: list[dict[str, list[int]]], labels: list[str], pad_id: int,
             token_task: bool, batch_size: int, device: str) -> dict[str, float]:
    """Validation loss and metrics, computed on whole words (first sub-token of each)."""
    import torch

    from hposweep.training.metrics import (
        sequence_classification_metrics,
        token_classification_metrics,
    )

    model.eval()
    gold: list[Any] = []
    pred: list[Any] = []
    loss_sum, batches = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            batch = _pad(dataset[start : start + batch_size], pad_id, token_task)
            output = model(**{k: v.to(device) for k, v in batch.items()})
            loss_sum += output.loss.item()
            batches += 1
            predicted = output.logits.argmax(-1).cpu()
            if not token_task:
                gold += [labels[i] for i in batch["labels"].tolist()]
                pred += [labels[i] for i in predicted.tolist()]
                continue
            for gold_row, pred_row in zip(batch["labels"].tolist(), predicted.tolist(), strict=True):
                keep = [i for i, g in enumerate(gold_row) if g != IGNORE_INDEX]
                gold.append([labels[gold_row[i]] for i in keep])
                pred.append([labels[pred_row[i]] for i in keep])
    metrics = (token_classification_metrics(gold, pred) if token_task
               else sequence_classification_metrics(gold, pred))
    metrics["loss"] = loss_sum / max(1, batches)
    return metrics


def _encode_tokens(tokenizer: Any, examples: list[Example], label_ids: dict[str, int],
                   max_length: int) -> list[dict[str, list[int]]]:
    encoded = tokenizer([list(e.tokens) for e in examples], is_split_into_words=True,
                        truncation=True, max_length=max_length)
    rows = []
    for i, example in enumerate(examples):
        word_ids = encoded.word_ids(i)
        labels, previous = [], None
        for word in word_ids:
            first_piece = word is not None and word != previous
            labels.append(label_ids[example.tags[word]] if first_piece else IGNORE_INDEX)
            previous = word
        rows.append({"input_ids": encoded["input_ids"][i],
                     "attention_mask": encoded["attention_mask"][i], "labels": labels})
    return rows


def _encode_sequences(tokenizer: Any, examples: list[Example], label_ids: dict[str, int],
                      max_length: int) -> list[dict[str, Any]]:
    encoded = tokenizer([" ".join(e.tokens) for e in examples], truncation=True,
                        max_length=max_length)
    return [{"input_ids": encoded["input_ids"][i], "attention_mask": encoded["attention_mask"][i],
             "labels": label_ids[e.label]} for i, e in enumerate(examples)]


def _pad(batch: list[dict[str, Any]], pad_id: int, token_task: bool) -> dict[str, Any]:
    import torch

    width = max(len(row["input_ids"]) for row in batch)

    def padded(key: str, value: int) -> Any:
        return torch.tensor([row[key] + [value] * (width - len(row[key])) for row in batch])

    out = {"input_ids": padded("input_ids", pad_id), "attention_mask": padded("attention_mask", 0)}
    out["labels"] = (padded("labels", IGNORE_INDEX) if token_task
                     else torch.tensor([row["labels"] for row in batch]))
    return out


def _parameter_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and LayerNorm weights (the usual transformers recipe)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        exempt = name.endswith("bias") or "norm" in name.lower()
        (no_decay if exempt else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
