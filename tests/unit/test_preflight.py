"""Before any trial of the built-in trainer: a model that cannot be built from its config and
a device this torch does not have are one-line config errors, not a failure per trial."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from hposweep.config.loading import load
from hposweep.config.schema import SweepConfig, study_name_for
from hposweep.errors import ConfigError
from hposweep.study.storage import storage_url
from hposweep.training.model import check_backbone
from tests.helpers import hposweep

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
TINY = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 64}
NO_CUDA = "built without CUDA" if torch.version.cuda is None else "no GPU visible"


def smoke(*overrides: str, from_config: dict[str, Any] | None = None) -> SweepConfig:
    cfg = load(SMOKE, list(overrides)).config
    if from_config is not None:
        cfg.model.from_config = from_config
    return cfg


def preflight_error(cfg: SweepConfig) -> str:
    with pytest.raises(ConfigError) as info:
        check_backbone(cfg, cfg.backbones[0])
    return str(info.value)


def test_unknown_model_type_is_named_with_known_ones() -> None:
    message = preflight_error(smoke(from_config={**TINY, "model_type": "bertt"}))
    assert message.startswith("model.from_config.model_type: transformers has no model type "
                              "'bertt'; known ones include ")
    assert "'bert'" in message and "\n" not in message


@pytest.mark.parametrize(("spec", "problem"), [
    ({**TINY, "hidden_size": 30, "num_attention_heads": 4},
     "The hidden size (30) is not a multiple of the number of attention heads (4)"),
    ({"model_type": "distilbert", "dim": 100, "n_heads": 3},
     "config.n_heads 3 must divide config.dim 100 evenly"),
    ({**TINY, "hidden_act": "nope"}, "KeyError: 'nope'"),
    ({"model_type": "clip"}, "Unrecognized configuration class <class "
     "'transformers.models.clip.configuration_clip.CLIPConfig'> for this kind of AutoModel: "
     "AutoModelForTokenClassification."),
])
def test_a_model_that_cannot_be_built_is_refused(spec: dict[str, Any], problem: str) -> None:
    assert preflight_error(smoke(from_config=spec)) == f"model.from_config: {problem}"


def test_the_vocabulary_size_is_the_tokenizers_so_any_given_one_passes() -> None:
    check_backbone(smoke(from_config={**TINY, "vocab_size": 0}), "tiny-bert")


def test_run_stops_before_any_study_is_created(workdir: Path) -> None:
    result = hposweep("run", SMOKE, "model.from_config.hidden_size=30",
                      "model.from_config.num_attention_heads=4")
    assert (result.exit_code, result.stderr) == (2, (
        "error: model.from_config: The hidden size (30) is not a multiple of the number of "
        "attention heads (4)\n"))
    assert not (workdir / "outputs" / "hpo").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch has a CUDA device")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_a_cuda_device_is_refused(device: str) -> None:
    assert preflight_error(smoke(f"train.device={device}")) == (
        f"train.device: {device} requested but this torch has no CUDA device "
        f"(torch {torch.__version__}, {NO_CUDA}); use cpu or auto")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="this torch has no CUDA device")
def test_a_cuda_index_beyond_the_visible_devices_is_refused() -> None:
    count = torch.cuda.device_count()
    assert preflight_error(smoke(f"train.device=cuda:{count}")) == (
        f"train.device: cuda:{count} requested but this torch sees {count} CUDA device(s) "
        f"(cuda:0 to cuda:{count - 1}); use one of them, cpu or auto")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this torch has an MPS device")
def test_mps_without_an_mps_device_is_refused() -> None:
    why = "built without MPS" if not torch.backends.mps.is_built() else "no MPS device visible"
    assert preflight_error(smoke("train.device=mps")) == (
        f"train.device: mps requested but this torch has no MPS device "
        f"(torch {torch.__version__}, {why}); use cpu or auto")


@pytest.mark.parametrize("device", [
    "cpu", "auto",
    pytest.param("cuda:0", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                    reason="this torch has no CUDA device"))])
def test_a_device_this_torch_has_passes(device: str) -> None:
    check_backbone(smoke(f"train.device={device}"), "tiny-bert")


def test_max_length_beyond_the_position_embeddings_is_exit_2_before_any_study(
        workdir: Path) -> None:
    """Longer sequences index past the position embeddings: on a GPU a device-side assert
    that poisons the process, on CPU an IndexError in every trial."""
    result = hposweep("run", SMOKE, "data.max_length=65")  # the smoke model has 64 positions
    assert (result.exit_code, result.stderr) == (2, (
        "error: data.max_length: 65 is more than the 64 positions of model.from_config's "
        "position embeddings (max_position_embeddings); use data.max_length=64 or less\n"))
    assert not (workdir / "outputs" / "hpo").exists()


def test_max_length_counts_the_positions_roberta_reserves() -> None:
    from transformers import AutoConfig

    from hposweep.training.model import _check_max_length

    roberta = AutoConfig.for_model("roberta", max_position_embeddings=514, pad_token_id=1)
    _check_max_length(smoke("data.max_length=512"), roberta, "roberta")
    with pytest.raises(ConfigError, match="513 is more than the 512 positions"):
        _check_max_length(smoke("data.max_length=513"), roberta, "roberta")


def empty_study(workdir: Path, cfg: SweepConfig) -> None:
    """The config's study, with no trial: what refit needs to go past its first check."""
    name = study_name_for(cfg, cfg.backbones[0])
    (workdir / "outputs" / "hpo" / name).mkdir(parents=True)
    optuna.create_study(study_name=name, storage=storage_url(cfg, name))


def test_refit_refuses_a_model_that_cannot_be_built_as_run_does(workdir: Path) -> None:
    """refit goes through run's checks: the same one-line error and exit 2, before the
    study is opened (its backbone dir is never made)."""
    bad = ["model.from_config.hidden_size=30", "model.from_config.num_attention_heads=4"]
    empty_study(workdir, load(SMOKE, bad).config)
    run = hposweep("run", SMOKE, *bad)
    refit = hposweep("refit", SMOKE, *bad)
    assert (refit.exit_code, refit.stderr) == (run.exit_code, run.stderr) == (2, (
        "error: model.from_config: The hidden size (30) is not a multiple of the number of "
        "attention heads (4)\n"))
    assert not (workdir / "outputs" / "hpo" / "tiny-bert").exists()


def test_refit_warns_that_k_fold_ignores_the_validation_file(workdir: Path) -> None:
    conll, files = SMOKE.parent / "conll-tiny.yaml", SMOKE.parents[1] / "examples" / "data"
    k_fold = ["k_fold.enabled=true", f"data.train={files / 'train.conll'}",
              f"data.validation={files / 'validation.conll'}"]
    empty_study(workdir, load(conll, k_fold).config)
    refit = hposweep("refit", conll, *k_fold)  # an empty study: nothing to refit
    assert refit.exit_code == 1
    assert refit.stderr.startswith(
        "warning: data.validation is ignored: k-fold splits data.train (k_fold.enabled=false "
        "uses the validation file)\n")
