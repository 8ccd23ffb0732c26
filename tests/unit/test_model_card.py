"""The exported model card says which model it is: with k-fold, which fold's and on what
share of the training data it was trained (the others' validation data it never saw)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from hposweep.config.loading import load
from hposweep.reports.export import model_card
from hposweep.reports.status import StudyStatus
from tests.helpers import checkpoint_metadata

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"


def card(tmp_path: Path, overrides: list[str], counts: dict, fold_values: list[float]) -> str:
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    replace(checkpoint_metadata(3, value=0.5), **counts).write(checkpoint)
    (checkpoint / "config.json").write_text(json.dumps({"id2label": {"0": "O", "1": "B-PER"}}))
    status = StudyStatus(backbone="tiny-bert", study_name="smoke_tiny-bert", storage="sqlite",
                         exists=True, max_trials=4, objective_metric="macro-f1-span",
                         best_trial=3, best_value=0.5, best_params={"learning_rate": 0.01},
                         best_fold_values=fold_values)
    return model_card(load(SMOKE, overrides).config, status, checkpoint)


def test_a_k_fold_card_names_the_fold_and_its_share_of_the_data(tmp_path: Path) -> None:
    text = card(tmp_path, ["k_fold.n_splits=5"],
                {"fold": 4, "n_folds": 5, "train_examples": 80, "validation_examples": 20},
                [0.4, 0.5, 0.6, 0.5, 0.5])
    assert "- model: fold 5/5's model, trained on 80% of the training data " \
           "(80 of 100 examples)" in text
    assert "| 5/5 | 0.5000 |" in text, "the per-fold table numbers folds as the line does"


def test_without_k_fold_the_card_says_what_the_model_was_trained_and_validated_on(
        tmp_path: Path) -> None:
    text = card(tmp_path, ["k_fold.enabled=false"],
                {"fold": None, "train_examples": 270, "validation_examples": 30}, [])
    assert "- model: trained on 270 examples, validated on 30" in text
    assert "fold" not in text.split("## Hyperparameters")[0]


def test_a_checkpoint_without_example_counts_still_names_its_fold(tmp_path: Path) -> None:
    """Checkpoints made before the counts were recorded: the fold, of the config's folds."""
    text = card(tmp_path, ["k_fold.n_splits=2"], {"fold": 1}, [0.4, 0.6])
    assert "- model: fold 2/2's model\n" in text


def test_a_final_model_without_a_cv_estimate_or_test_set_still_gets_a_card(tmp_path: Path) -> None:
    """A final model's metadata may hold no objective value (several objectives): the card
    says so instead of failing to format it."""
    text = card(tmp_path, [], {"refit": True, "objective_value": None, "epochs": 3,
                               "train_examples": 300}, [])
    assert "CV estimate: f1 = -; no test set, so no test score." in text
