"""The README's examples teach: the smoke data is hard enough that trials differ (no
objective saturating at 1.0000), and two backbones built with `model.per_backbone` are
really two models, so `compare` shows a difference."""

from __future__ import annotations

import json
from pathlib import Path

from hposweep.config.loading import load
from hposweep.config.schema import model_spec
from hposweep.data.readers import build_folds, load_data
from hposweep.study.identity import objective_settings
from tests.conftest import SMOKE
from tests.helpers import hposweep

# Two trials per backbone, with learning rates that learn something in 2 epochs.
# Batches of 8: enough optimizer steps in 2 epochs for the 16-wide tiny-a to learn at all.
TWO = ["backbones=[tiny-a,tiny-b]", "study.max_trials=2", "train.epochs=2",
       "search_space.batch_size.choices=[8]", "search_space.learning_rate.low=0.01",
       "study.pruner.name=none", "mlflow.enabled=false"]


def test_smoke_validation_folds_hold_names_the_training_folds_never_saw() -> None:
    """Memorising names cannot reach 1.0: part of every validation fold's entities are
    words its training fold does not have (only the context tells their type)."""
    cfg = load(SMOKE).config
    for fold in build_folds(cfg, load_data(cfg)):
        seen = {token for e in fold.train for token in e.tokens}
        entities = [token for e in fold.validation
                    for token, tag in zip(e.tokens, e.tags, strict=True) if tag != "O"]
        unseen = sum(token not in seen for token in entities) / len(entities)
        assert unseen > 0.15, unseen


def test_per_backbone_settings_change_only_their_backbone() -> None:
    cfg = load(SMOKE, ["backbones=[tiny-a,tiny-b,tiny-bert]"]).config
    a, b, shared = (model_spec(cfg, name) for name in ("tiny-a", "tiny-b", "tiny-bert"))
    assert shared == cfg.model.from_config
    assert (a["hidden_size"], b["hidden_size"], shared["hidden_size"]) == (16, 64, 32)
    assert b["num_hidden_layers"] == 2 and a["num_hidden_layers"] == 1
    assert objective_settings(cfg)["model.per_backbone"] == cfg.model.per_backbone


def test_per_backbone_is_ignored_for_pretrained_backbones() -> None:
    cfg = load(SMOKE, ["backbones=[tiny-b]", "model.from_config=null"]).config
    assert model_spec(cfg, "tiny-b") is None  # loaded with from_pretrained, as it is


def test_two_backbones_are_two_models_and_compare_shows_the_difference(workdir: Path) -> None:
    run = hposweep("run", SMOKE, *TWO, "--json")
    assert run.exit_code == 0, run.stderr
    summaries = {s["backbone"]: s for s in run.json()["backbones"]}
    for name, hidden in (("tiny-a", 16), ("tiny-b", 64)):
        kept = Path(summaries[name]["checkpoint"])
        assert json.loads((kept / "config.json").read_text())["hidden_size"] == hidden
    values = {name: [t["value"] for t in s["trials"]] for name, s in summaries.items()}
    assert values["tiny-a"] != values["tiny-b"], values
    assert all(0 < v < 1 for vs in values.values() for v in vs), values  # nothing saturates
    assert len(set(values["tiny-a"])) == 2, "a backbone's trials differ"
    compared = hposweep("compare", SMOKE, *TWO, "--json")
    best = {s["backbone"]: s["best_value"] for s in json.loads(compared.stdout)}
    assert best["tiny-a"] != best["tiny-b"]
