"""A custom trainer for hposweep: a plain PyTorch model, no transformers.

A bag-of-words tagger (an embedding and a linear layer over each token) for the
token-classification data hposweep hands over. It shows the whole contract:
hyperparameters in, the fold's data, reporting for pruning, saving the model to keep,
saving and restoring training state to resume, and a dict of metrics out.

    hposweep run examples/custom_trainer/sweep.yaml
"""

from __future__ import annotations

import json
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from hposweep.api import FoldData, Pruned, TrialContext


class Tagger(torch.nn.Module):
    def __init__(self, vocab_size: int, n_labels: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab_size, dim)
        self.dropout = torch.nn.Dropout(dropout)
        self.out = torch.nn.Linear(dim, n_labels)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.embed(ids)))


def fit(params: dict[str, Any], data: FoldData, ctx: TrialContext) -> dict[str, float]:
    torch.manual_seed(ctx.seed)
    vocab = {"<unk>": 0}
    for example in data.train:
        for token in example.tokens:
            vocab.setdefault(token, len(vocab))
    labels = {label: i for i, label in enumerate(data.labels)}

    def tensors(examples: list) -> tuple[torch.Tensor, torch.Tensor]:
        ids = [vocab.get(t, 0) for e in examples for t in e.tokens]
        tags = [labels[t] for e in examples for t in e.tags]
        return torch.tensor(ids), torch.tensor(tags)

    train_ids, train_tags = tensors(data.train)
    val_ids, val_tags = tensors(data.validation)
    model = Tagger(len(vocab), len(labels), int(params.get("dim", 32)), params.get("dropout", 0.1))
    optimizer = torch.optim.Adam(model.parameters(), lr=params["learning_rate"])
    start = _restore(ctx, model, optimizer)
    accuracy = 0.0
    for epoch in range(start, ctx.config.train.epochs):
        model.train()
        loss = torch.nn.functional.cross_entropy(model(train_ids), train_tags)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(val_ids).argmax(-1) == val_tags).float().mean().item()
        _save_state(ctx, model, optimizer, epoch)
        ctx.log_metrics({"accuracy": accuracy, "train_loss": loss.item()}, epoch)
        ctx.report(accuracy, epoch)
        if ctx.should_prune():
            raise Pruned(f"pruned at epoch {epoch + 1}")
    if ctx.checkpoint_dir is not None:  # None: the sweep will not keep this fold's model
        ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        save_file(model.state_dict(), str(ctx.checkpoint_dir / "model.safetensors"))
        (ctx.checkpoint_dir / "vocab.json").write_text(json.dumps(vocab))
    return {"accuracy": accuracy}


def _save_state(ctx: TrialContext, model: torch.nn.Module, optimizer: Any, epoch: int) -> None:
    if ctx.resume_dir is None:
        return
    ctx.resume_dir.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(ctx.resume_dir / "model.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "epoch": epoch}, ctx.resume_dir / "state.pt")


def _restore(ctx: TrialContext, model: torch.nn.Module, optimizer: Any) -> int:
    """The epoch to start from: after the last saved one, or 0."""
    if ctx.resume_dir is None or not (ctx.resume_dir / "state.pt").is_file():
        return 0
    model.load_state_dict(load_file(str(ctx.resume_dir / "model.safetensors")))
    state = torch.load(ctx.resume_dir / "state.pt", weights_only=True)  # never unpickle code
    optimizer.load_state_dict(state["optimizer"])
    return int(state["epoch"]) + 1
