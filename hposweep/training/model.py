"""Building the tokenizer and the model for a backbone.

Two paths: ``from_pretrained(name_or_path)`` for a real backbone, and
``model.from_config`` (a small model built from a config dict, with a word-level
tokenizer built from the training data) for offline use and CI.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NoReturn

from hposweep.api import Example
from hposweep.config.schema import SweepConfig, model_spec
from hposweep.errors import ConfigError, first_line

SPECIAL_TOKENS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
                  "sep_token": "[SEP]", "mask_token": "[MASK]"}
# Config attributes that hold a dropout probability, across transformers architectures.
DROPOUT_ATTRIBUTES = ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout",
                      "attention_dropout", "classifier_dropout", "seq_classif_dropout",
                      "hidden_dropout", "summary_last_dropout")


def word_level_tokenizer(examples: list[Example], max_length: int, token_types: bool = False
                         ) -> Any:
    """A fast tokenizer whose vocabulary is every token of ``examples`` (one id per word);
    ``token_types``: it also returns token type ids (1 for a pair's second text), for a
    model that has token types."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS.values())}
    for example in examples:
        for token in example.tokens:
            vocab.setdefault(token, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    cls, sep = SPECIAL_TOKENS["cls_token"], SPECIAL_TOKENS["sep_token"]
    core.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B:1 {sep}:1",  # token type 1 for the second text
        special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])],
    )
    inputs = ["input_ids", *(["token_type_ids"] if token_types else []), "attention_mask"]
    return PreTrainedTokenizerFast(tokenizer_object=core, model_max_length=max_length,
                                   model_input_names=inputs, **SPECIAL_TOKENS)


def load_tokenizer(cfg: SweepConfig, backbone: str, examples: list[Example]) -> Any:
    if cfg.model.from_config is not None:
        from transformers import AutoConfig

        spec = dict(cfg.model.from_config)
        types = getattr(AutoConfig.for_model(spec.pop("model_type"), **spec), "type_vocab_size", 0)
        return word_level_tokenizer(examples, cfg.data.max_length, token_types=types > 1)
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(backbone, **hub_options(cfg))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"backbones: cannot load a tokenizer for {backbone!r}: {exc}") from None
    if not tokenizer.is_fast:
        raise ConfigError(f"backbones: {backbone!r} has no fast tokenizer (needed for word ids)")
    return tokenizer


AUTO_MODEL = {"token-classification": "AutoModelForTokenClassification",
              "sequence-classification": "AutoModelForSequenceClassification"}
# Shown when an unknown model_type is close to none of transformers' names.
COMMON_MODEL_TYPES = ("bert", "distilbert", "roberta", "deberta-v2", "electra", "xlm-roberta")


def local_files_only(cfg: SweepConfig) -> bool:
    """``model.local_files_only``; null means true when ``HF_HUB_OFFLINE`` is set."""
    if cfg.model.local_files_only is not None:
        return cfg.model.local_files_only
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_options(cfg: SweepConfig) -> dict[str, Any]:
    """What every ``from_pretrained`` of a backbone (config, tokenizer, model) is given."""
    return {"trust_remote_code": cfg.model.trust_remote_code, "revision": cfg.model.revision,
            "local_files_only": local_files_only(cfg)}


# Backbones whose re-initialised head was already reported by this process.
_WARNED_HEADS: set[str] = set()


def build_model(
    cfg: SweepConfig, backbone: str, labels: list[str], tokenizer: Any, dropout: float | None,
    warn: Callable[[str], None] = print,
) -> Any:
    """A fresh model for one fold; call after seeding so its initial weights are reproducible.
    Its weights are float32 (``model.torch_dtype`` is the dtype they are read in).

    A pretrained head of another size than the data's labels (a checkpoint fine-tuned on
    other labels) is re-initialised, and ``warn`` says so once per backbone and process.
    """
    import torch
    import transformers
    from transformers import AutoConfig

    auto_model = getattr(transformers, AUTO_MODEL[cfg.data.task])
    trust = cfg.model.trust_remote_code
    spec = model_spec(cfg, backbone)
    if spec is not None:
        model_config = AutoConfig.for_model(spec.pop("model_type"), **spec)
        model_config.vocab_size = len(tokenizer)
        model_config.pad_token_id = tokenizer.pad_token_id
    else:
        model_config = AutoConfig.from_pretrained(backbone, **hub_options(cfg))
    model_config.num_labels = len(labels)
    model_config.id2label = dict(enumerate(labels))
    model_config.label2id = {label: i for i, label in enumerate(labels)}
    if dropout is not None:
        for attribute in DROPOUT_ATTRIBUTES:
            if getattr(model_config, attribute, None) is not None:
                setattr(model_config, attribute, dropout)
    if cfg.model.from_config is not None:
        return auto_model.from_config(model_config, trust_remote_code=trust)
    model, info = auto_model.from_pretrained(
        backbone, config=model_config, ignore_mismatched_sizes=True, output_loading_info=True,
        dtype=getattr(torch, cfg.model.torch_dtype or "float32"), **hub_options(cfg))
    # float32 master weights whatever the dtype they were read in: AdamW's updates at
    # fine-tuning learning rates are below bfloat16's precision and would vanish.
    model = model.float()
    mismatched = sorted(info.get("mismatched_keys") or ())
    if mismatched and backbone not in _WARNED_HEADS:
        _WARNED_HEADS.add(backbone)
        shapes = "; ".join(f"{key} {tuple(saved)} -> {tuple(new)}" for key, saved, new in mismatched)
        warn(f"backbones: {backbone!r} has a head of another size than the {len(labels)} labels "
             f"of this data; re-initialised (ignore_mismatched_sizes): {shapes}")
    return model


def check_backbone(cfg: SweepConfig, backbone: str) -> None:
    """Fail before any trial when the device is missing, cannot train in the configured
    precision, or the model cannot be built."""
    from hposweep.training.device import resolve_device
    from hposweep.training.precision import resolve_precision

    _check_device(cfg.train.device)
    resolve_precision(cfg.train.precision, resolve_device(cfg.train.device))
    if cfg.model.from_config is not None:
        _check_from_config(cfg, backbone)
        return
    _check_pretrained(cfg, backbone)


def _check_device(device: str) -> None:
    kind, _, index = device.partition(":")
    if kind not in ("cuda", "mps"):
        return
    import torch

    if kind == "mps" and not torch.backends.mps.is_available():
        why = "built without MPS" if not torch.backends.mps.is_built() else "no MPS device visible"
        _missing_device(device, "MPS", why)
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            _missing_device(device, "CUDA", "built without CUDA" if torch.version.cuda is None
                            else "no GPU visible")
        if index and int(index) >= count:
            raise ConfigError(f"train.device: {device} requested but this torch sees {count} CUDA "
                              f"device(s) (cuda:0 to cuda:{count - 1}); use one of them, cpu or auto")


def _missing_device(device: str, kind: str, why: str) -> NoReturn:
    import torch

    raise ConfigError(f"train.device: {device} requested but this torch has no {kind} device "
                      f"(torch {torch.__version__}, {why}); use cpu or auto")


def _check_from_config(cfg: SweepConfig, backbone: str) -> None:
    """Build the model on the meta device (no memory, milliseconds): a config transformers
    refuses (heads not dividing the hidden size, an unknown activation) fails here, once."""
    import difflib

    import torch
    import transformers
    from transformers import CONFIG_MAPPING, AutoConfig

    spec = model_spec(cfg, backbone) or {}
    model_type = spec.pop("model_type")
    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        names = sorted(CONFIG_MAPPING.keys())
        known = difflib.get_close_matches(str(model_type), names, n=5, cutoff=0.6) or [
            name for name in COMMON_MODEL_TYPES if name in names]
        raise ConfigError(f"model.from_config.model_type: transformers has no model type "
                          f"{model_type!r}; known ones include {', '.join(map(repr, known))} "
                          f"({len(names)} in transformers {transformers.__version__})")
    try:
        model_config = AutoConfig.for_model(model_type, **spec)
        # As build_model sets them from the word-level tokenizer: [PAD] is id 0 of its specials.
        model_config.vocab_size, model_config.pad_token_id = len(SPECIAL_TOKENS), 0
        with torch.device("meta"):
            getattr(transformers, AUTO_MODEL[cfg.data.task]).from_config(
                model_config, trust_remote_code=cfg.model.trust_remote_code)
    except Exception as exc:  # whatever transformers raises for the user's config dict
        problem = first_line(exc) if isinstance(exc, ValueError) else (
            f"{type(exc).__name__}: {first_line(exc)}")
        raise ConfigError(f"model.from_config: {problem}") from None
    _check_max_length(cfg, model_config, "model.from_config")


def _check_pretrained(cfg: SweepConfig, backbone: str) -> None:
    """A ``from_pretrained`` backbone can be loaded (a local dir, or the hub provides it)."""
    import logging
    from pathlib import Path

    if backbone.startswith(("/", ".", "~")) and not Path(backbone).expanduser().is_dir():
        raise ConfigError(f"backbones: local model dir not found: {backbone}")
    from transformers import AutoConfig

    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)  # no retry chatter
    try:
        model_config = AutoConfig.from_pretrained(backbone, **hub_options(cfg))
    except (OSError, ValueError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        advice = ("" if offline else "; set HF_HUB_OFFLINE=1 to fail fast offline")
        raise ConfigError(
            f"backbones: cannot load {backbone!r}: not a local model dir, and the hub did not "
            f"provide it ({str(exc).splitlines()[0][:160]}){advice}; model.from_config builds "
            "a model without downloading"
        ) from None
    _check_max_length(cfg, model_config, f"backbone {backbone!r}")


# Models whose position ids start after the padding id (RoBERTa's family): their
# ``max_position_embeddings`` counts ``pad_token_id + 1`` positions no token can take.
OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text",
                    "xlm-roberta-xl", "roberta-prelayernorm")


def _check_max_length(cfg: SweepConfig, model_config: Any, model: str) -> None:
    """A sequence longer than the model's position embeddings is a CUDA device-side assert
    (on CPU an IndexError) in the first forward pass: refused here, before any trial."""
    positions = getattr(model_config, "max_position_embeddings", None)
    if not isinstance(positions, int):
        return  # relative positions (DeBERTa-v2 without absolute ones, T5...): no limit here
    if getattr(model_config, "model_type", None) in OFFSET_POSITIONS:
        positions -= (getattr(model_config, "pad_token_id", None) or 0) + 1
    if cfg.data.max_length > positions:
        raise ConfigError(f"data.max_length: {cfg.data.max_length} is more than the {positions} "
                          f"positions of {model}'s position embeddings (max_position_embeddings);"
                          f" use data.max_length={positions} or less")
