"""The built-in trainer: a plain PyTorch loop over a transformers model.

AdamW with linear warmup and decay, gradient clipping, gradient accumulation, mixed
precision (``training/precision.py``), one evaluation per epoch (reported for pruning),
early stopping and best-epoch selection (``training/epoch_selection.py``), seeded so
that a CPU run is reproducible.

The loss is the mean over the labelled items (tokens, or sequences) of a whole
accumulation window, so ``batch_size × gradient_accumulation_steps`` trains like one
batch of that size. Each batch runs as forward/backward passes of a per-step batch that
fits in memory (``training/micro_batch.py``: out of GPU memory, the fold starts again
with a smaller one, the effective batch unchanged). Nothing is read back from the device
per step: the running loss stays on the device and is read once per epoch (a NaN or inf
is found then).
"""

from __future__ import annotations

import functools
import math
import random
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hposweep._testing.faults import kill_point, memory_point
from hposweep.api import Example, FoldData, Pruned, TrialContext, TrialFailed
from hposweep.config.schema import BUILTIN_HYPERPARAMETERS, SweepConfig
from hposweep.training import state as training_state
from hposweep.training.batching import make_loader
from hposweep.training.cost_metrics import cost_metrics
from hposweep.training.cost_metrics import requested as cost_metrics_requested
from hposweep.training.device import (
    is_out_of_memory,
    optimizer_options,
    out_of_memory_reason,
    peak_memory_metrics,
    prepare_device,
    release_memory,
    reset_peak_memory,
    resolve_device,
)
from hposweep.training.epoch_selection import EpochSelector, cpu_copy, selector_for
from hposweep.training.micro_batch import after_out_of_memory, first_micro_batch, split
from hposweep.training.model import build_model, load_tokenizer
from hposweep.training.precision import Precision, make_precision
from hposweep.training.state import Progress

IGNORE_INDEX = -100  # label id the loss skips: special tokens and non-first sub-tokens
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def hyperparameters(cfg: SweepConfig, params: Mapping[str, Any]) -> dict[str, Any]:
    """The trial's sampled values over the config's ``train`` defaults."""
    resolved = {name: getattr(cfg.train, name) for name in BUILTIN_HYPERPARAMETERS}
    resolved.update(params)
    for name in ("batch_size", "epochs", "gradient_accumulation_steps"):
        resolved[name] = int(resolved[name])
    return resolved


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
    generator: Any  # draws the batch order; its state at an epoch's start is saved
    optimizer: Any
    scheduler: Any
    precision: Precision
    validation_set: list[dict[str, Any]]
    token_task: bool
    eval_batch_size: int
    micro: int  # sequences per forward/backward pass (a divisor of the batch size)

    def optimizer_steps(self, batches: int) -> int:
        """Optimizer steps taken after ``batches`` batches of an epoch."""
        return -(-batches // self.hp["gradient_accumulation_steps"])


def prepare(params: dict[str, Any], data: FoldData, ctx: TrialContext,
            micro: int | None = None) -> Setup:
    """The fold's model, data and optimizer; ``micro``: sequences per forward pass (None:
    the whole batch)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    cfg = ctx.config
    hp = hyperparameters(cfg, params)
    micro = micro or hp["batch_size"]
    device = resolve_device(cfg.train.device)
    prepare_device(device)
    seed_everything(ctx.seed)
    # A vocabulary built from the data (model.from_config) never sees the test set.
    tokenizer = load_tokenizer(cfg, ctx.backbone,
                               data.train + ([] if ctx.final else data.validation))
    model = build_model(cfg, ctx.backbone, data.labels, tokenizer, hp["dropout"],
                        warn=ctx.warn).to(device)
    label_ids = {label: i for i, label in enumerate(data.labels)}
    token_task = cfg.data.task == "token-classification"
    encode = _encode_tokens if token_task else _encode_sequences
    generator = torch.Generator().manual_seed(ctx.seed)
    loader = make_loader(encode(tokenizer, data.train, label_ids, cfg.data.max_length),
                         hp["batch_size"], generator,
                         functools.partial(_pad, pad_id=tokenizer.pad_token_id, token_task=token_task),
                         cfg.data.group_by_length, device, worker_seed=ctx.seed)
    optimizer = torch.optim.AdamW(_parameter_groups(model, hp["weight_decay"]),
                                  lr=hp["learning_rate"], **optimizer_options(device))
    steps_per_epoch = -(-len(loader) // hp["gradient_accumulation_steps"])
    total_steps = hp["epochs"] * steps_per_epoch  # the scheduler counts optimizer steps
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(hp["warmup_ratio"] * total_steps), total_steps)
    return Setup(hp, device, tokenizer, model, loader, generator, optimizer, scheduler,
                 make_precision(cfg.train.precision, device),
                 encode(tokenizer, data.validation, label_ids, cfg.data.max_length), token_task,
                 # evaluated in passes as small as the training's, in the same proportion
                 max(1, (cfg.train.eval_batch_size or 2 * hp["batch_size"]) * micro
                     // hp["batch_size"]),
                 micro)


def train(params: dict[str, Any], data: FoldData, ctx: TrialContext) -> dict[str, float]:
    """Train one fold; resume from ``ctx.resume_dir`` when a saved state is there.

    Returns the selected epoch's metrics (``train.select_epoch``) with ``best_epoch`` (that
    epoch, from 0) and ``epochs_trained`` (and ``gpu_peak_mb`` on CUDA). Out of GPU memory,
    the fold starts again with a smaller per-step batch (``training/micro_batch.py``); at a
    per-step batch of 1 the trial fails. A reduced per-step batch is recorded
    (``micro_batch_size``, ``oom_retries``).
    """
    batch_size = hyperparameters(ctx.config, params)["batch_size"]
    device = resolve_device(ctx.config.train.device)
    micro = first_micro_batch(batch_size, device, ctx.backbone)
    while True:
        try:
            metrics = _train_fold(params, data, ctx, micro)
            break
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
        # Out of the except block: the error and its frames (the model, the optimizer) are gone.
        release_memory()
        ctx.record("oom_retries", ctx.recorded.get("oom_retries", 0) + 1)  # every fold's
        smaller = after_out_of_memory(batch_size, micro, device, ctx.backbone)
        if smaller is None:
            raise TrialFailed(out_of_memory_reason(micro, device))
        ctx.warn(f"trial {ctx.trial_number}: {out_of_memory_reason(micro, device)}; this fold "
                 f"starts again with {batch_size // smaller} passes of {smaller} per batch of "
                 f"{batch_size} (the effective batch is unchanged)")
        micro = smaller
    if micro < batch_size:
        ctx.record("micro_batch_size", micro)
    return metrics


def _train_fold(params: dict[str, Any], data: FoldData, ctx: TrialContext, micro: int
                ) -> dict[str, float]:
    s = prepare(params, data, ctx, micro)
    reset_peak_memory(s.device)
    cfg = ctx.config
    if ctx.final:  # trains its epochs, then is scored once on the test set: no epoch is
        # chosen, and nothing stops early, on what it is scored on
        keep_best, selector = False, EpochSelector(False, 0.0, None)
    else:
        keep_best, selector = cfg.train.select_epoch == "best", selector_for(cfg)
    # Weights are copied only when this fold's model may be kept: else only values count.
    keep_weights = keep_best and ctx.checkpoint_dir is not None
    resumed = _resume(s, ctx, selector, keep_weights)
    if resumed is None:  # refused, maybe half-restored: the fold starts over from a fresh setup
        s = prepare(params, data, ctx, micro)
        resumed = Progress(), s.generator.get_state()
    progress, epoch_start_rng = resumed
    for epoch, value in progress.history:  # the retried trial reports what its predecessor did
        ctx.report(value, epoch)
    for epoch in range(progress.epoch, s.hp["epochs"]):
        if selector.should_stop():
            break  # early stopping: patience epochs without an improvement
        if progress.step:
            s.generator.set_state(epoch_start_rng)  # same batch order as the interrupted epoch
        epoch_start_rng = s.generator.get_state()
        train_loss = _train_epoch(s, ctx, epoch, progress, epoch_start_rng, selector)
        if ctx.final:  # nothing to score on until training ends: the value is the loss
            metrics, value = {"train_loss": train_loss}, train_loss
        else:
            metrics = {**_evaluate(s, data), "train_loss": train_loss}
            value = metrics[ctx.objective_metric]
        selector.observe(epoch, value, metrics, s.model, keep_weights)
        progress = Progress(epoch + 1, 0, 0.0, [*progress.history, (epoch, value)], metrics,
                            selector.best, selector.since_best)
        every_epochs = cfg.train.resume_every_epochs
        # Saved before the report: a kill there loses nothing. (A stopped fold trains no more.)
        if (every_epochs and (epoch + 1) % every_epochs == 0 and epoch + 1 < s.hp["epochs"]
                and not selector.should_stop()):
            _save_state(s, ctx, epoch_start_rng, progress, selector)
        ctx.log_metrics(metrics, epoch)
        ctx.report(value, epoch)
        if ctx.should_prune():
            # The sweep adds where, in the live view's words: "(fold 1/2 epoch 2)".
            raise Pruned(f"pruned: {ctx.objective_metric}={value:.4f}")
    assert selector.best is not None
    chosen = selector.best if keep_best else None
    if ctx.checkpoint_dir is not None:
        if chosen is not None and selector.best_weights is not None:
            s.model.load_state_dict(selector.best_weights)
        save_checkpoint(s.model, s.tokenizer, ctx)
    if ctx.final:  # the test set's metrics, once, of the model just saved
        result = _evaluate(s, data) if s.validation_set else {}
    else:
        result = dict(chosen.metrics if chosen is not None else progress.metrics)
        last_epoch = progress.history[-1][0]
        result["best_epoch"] = float(chosen.epoch if chosen is not None else last_epoch)
        result["epochs_trained"] = float(last_epoch + 1)
    result.update(peak_memory_metrics(s.device))
    costs = cost_metrics_requested(ctx.config)
    if not costs or not s.validation_set:
        return result
    first = _pad(s.validation_set[: s.hp["batch_size"]], s.tokenizer.pad_token_id, s.token_task)
    return {**result, **cost_metrics(s.model, first, s.device, costs)}


def _evaluate(s: Setup, data: FoldData) -> dict[str, float]:
    return evaluate(s.model, s.validation_set, data.labels, s.tokenizer.pad_token_id,
                    s.token_task, s.eval_batch_size, s.device, s.precision)


def _train_epoch(s: Setup, ctx: TrialContext, epoch: int, progress: Progress,
                 epoch_start_rng: Any, selector: EpochSelector) -> float:
    """One epoch's optimizer steps, each over a window of ``gradient_accumulation_steps``
    batches; returns the epoch's mean training loss. ``progress`` is updated in place."""
    import torch

    accumulate = s.hp["gradient_accumulation_steps"]
    every_steps = ctx.config.train.resume_every_steps
    s.model.train()
    running = torch.tensor(progress.train_loss, device=s.device)  # summed window losses
    window: list[dict[str, Any]] = []
    for step, batch in enumerate(s.loader):
        if step < progress.step:
            continue  # done before the interruption
        window.append(batch)
        if len(window) < accumulate and step + 1 < len(s.loader):
            continue
        window_loss = _optimizer_step(
            s, ctx, window, f"trial{ctx.trial_number}:epoch{epoch}:batch{step + 1 - len(window)}")
        if window_loss is None:
            progress.skipped += 1
        else:
            running += window_loss
        window = []
        progress.step = step + 1
        done = s.optimizer_steps(progress.step)
        if every_steps and done % every_steps == 0 and progress.step < len(s.loader):
            progress.train_loss = float(running)
            _save_state(s, ctx, epoch_start_rng, progress, selector)
    stepped = s.optimizer_steps(len(s.loader)) - progress.skipped
    if stepped == 0:
        raise TrialFailed(f"every optimizer step of epoch {epoch + 1} was skipped: the fp16 "
                          "gradients were never finite (try bf16 or fp32, or a lower learning rate)")
    loss = float(running) / stepped  # the one read per epoch
    if not math.isfinite(loss):
        raise TrialFailed(f"training loss is {loss} in epoch {epoch + 1}")
    return loss


def _optimizer_step(s: Setup, ctx: TrialContext, window: list[dict[str, Any]], where: str) -> Any:
    """Backward over each batch of ``window``, then one optimizer and scheduler step.
    Returns the window's mean loss as a device tensor, or None when the fp16 scaler skipped
    the step (its gradients overflowed: the schedule does not advance either).
    ``where`` names the window's first batch; kill point ``accumulate:<where>+<i>`` follows
    the backward of its ``i``-th batch."""
    import torch

    items = sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in window)  # CPU tensors: no sync
    window_loss = torch.zeros((), device=s.device)
    for index, batch in enumerate(window):
        for part in split(batch, s.micro):
            loss = _summed_loss(s.model, part, s.device, s.precision, s.token_task) / max(1, items)
            s.precision.backward(loss)
            window_loss += loss.detach()
        kill_point(f"accumulate:{where}+{index}")
    stepped = s.precision.step(s.optimizer, s.model.parameters(), ctx.config.train.max_grad_norm)
    s.optimizer.zero_grad(set_to_none=True)
    if not stepped:
        return None
    s.scheduler.step()
    return window_loss


def _summed_loss(model: Any, batch: dict[str, Any], device: str, precision: Precision,
                 token_task: bool) -> Any:
    """Cross-entropy summed over the batch's labelled items (the caller divides)."""
    import torch

    inputs = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k in MODEL_INPUTS}
    labels = batch["labels"].to(device, non_blocking=True)
    memory_point(len(labels))
    with precision.autocast():
        logits = model(**inputs).logits
    return torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="sum")


def _resume(s: Setup, ctx: TrialContext, selector: EpochSelector, keep_weights: bool
            ) -> tuple[Progress, Any] | None:
    """The saved progress and epoch-start RNG state, or a fresh start; None when the saved
    state was refused (removed, and ``s`` may hold part of it)."""
    fresh = Progress(), s.generator.get_state()
    if ctx.resume_dir is None:
        return fresh
    try:
        restored = training_state.load(ctx.resume_dir, s.model, s.optimizer, s.scheduler,
                                       s.generator, s.device)
    except training_state.StateRefused as exc:
        ctx.warn(f"trial {ctx.trial_number}: resume state in {ctx.resume_dir} refused ({exc}); "
                 "training this fold from the start")
        shutil.rmtree(ctx.resume_dir, ignore_errors=True)
        return None
    if restored is None:
        return fresh
    s.precision.load_state_dict(restored.scaler)
    best_weights = restored.best_weights
    if keep_weights and best_weights is None and _model_is_best(restored.progress):
        best_weights = cpu_copy(s.model)
    selector.restore(restored.progress.best, restored.progress.since_best, best_weights)
    return restored.progress, restored.epoch_generator


def _model_is_best(progress: Progress) -> bool:
    """The model's current weights are the best epoch's (saved right after that epoch)."""
    return progress.step == 0 and progress.best is not None and (
        progress.best.epoch == progress.epoch - 1)


def _save_state(s: Setup, ctx: TrialContext, epoch_start_rng: Any, progress: Progress,
                selector: EpochSelector) -> None:
    """Save the resume state; a failed save (a full disk) is a warning and training goes on.

    The best epoch's kept weights are saved too, unless they are the model's own."""
    if ctx.resume_dir is None:
        return
    best_weights = None if _model_is_best(progress) else selector.best_weights
    try:
        training_state.save(ctx.resume_dir, s.model, s.optimizer, s.scheduler,
                            s.generator, epoch_start_rng, progress, s.precision.state_dict(),
                            best_weights, s.device)
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


def evaluate(model: Any, dataset: list[dict[str, Any]], labels: list[str], pad_id: int,
             token_task: bool, batch_size: int, device: str, precision: Precision | None = None
             ) -> dict[str, float]:
    """Validation loss (the mean over labelled items, so it does not depend on the batch
    size) and metrics, computed on whole words (first sub-token of each). Predictions come
    back from the device once per batch; the loss is read once."""
    import torch

    from hposweep.training.metrics import (
        sequence_classification_metrics,
        token_classification_metrics,
    )

    precision = precision or make_precision("fp32", device)
    model.eval()
    gold: list[Any] = []
    pred: list[Any] = []
    loss_sum = torch.zeros((), device=device)
    items = 0
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            batch = _pad(dataset[start : start + batch_size], pad_id, token_task)
            inputs = {k: v.to(device) for k, v in batch.items() if k in MODEL_INPUTS}
            memory_point(len(batch["labels"]))
            with precision.autocast():
                logits = model(**inputs).logits
            loss_sum += torch.nn.functional.cross_entropy(
                logits.float().reshape(-1, logits.shape[-1]), batch["labels"].to(device).reshape(-1),
                ignore_index=IGNORE_INDEX, reduction="sum")
            gold_ids = batch["labels"]
            items += int((gold_ids != IGNORE_INDEX).sum())
            predicted = logits.argmax(-1).cpu()
            if not token_task:
                gold += [labels[i] for i in gold_ids.tolist()]
                pred += [labels[i] for i in predicted.tolist()]
                continue
            keep = gold_ids != IGNORE_INDEX
            for row in range(len(gold_ids)):
                gold.append([labels[i] for i in gold_ids[row][keep[row]].tolist()])
                pred.append([labels[i] for i in predicted[row][keep[row]].tolist()])
    metrics = (token_classification_metrics(gold, pred) if token_task
               else sequence_classification_metrics(gold, pred))
    metrics["loss"] = float(loss_sum) / max(1, items)
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
    """Texts, or text pairs (``Example.text_pair``: sentence-pair classification)."""
    texts = [" ".join(e.tokens) for e in examples]
    pairs = [" ".join(e.text_pair) for e in examples if e.text_pair is not None]
    if pairs and len(pairs) != len(examples):
        raise TrialFailed("some examples have a text_pair and others not")
    encoded = tokenizer(texts, pairs or None, truncation=True, max_length=max_length)
    keys = [k for k in MODEL_INPUTS if k in encoded]
    return [{**{k: encoded[k][i] for k in keys}, "labels": label_ids[e.label]}
            for i, e in enumerate(examples)]


def _pad(batch: list[dict[str, Any]], pad_id: int, token_task: bool) -> dict[str, Any]:
    import torch

    width = max(len(row["input_ids"]) for row in batch)

    def padded(key: str, value: int) -> Any:
        return torch.tensor([row[key] + [value] * (width - len(row[key])) for row in batch])

    out = {"input_ids": padded("input_ids", pad_id), "attention_mask": padded("attention_mask", 0)}
    if "token_type_ids" in batch[0]:
        out["token_type_ids"] = padded("token_type_ids", 0)
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
