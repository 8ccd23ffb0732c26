"""Built-in trainer throughput (sequences/s) against transformers' `Trainer` on the same
tiny BERT, the same encoded data, batch size, epochs and learning rate, in one run.
Both evaluate once per epoch (ours also computes seqeval metrics; Trainer only the loss).
Target: the built-in trainer at least as fast."""

from __future__ import annotations

import statistics
import tempfile
import time

from _common import REPO

N_TRAIN, N_VALIDATION, EPOCHS, BATCH, LR, REPEATS = 2000, 200, 2, 32, 1e-3, 5
MODEL = ["model.from_config.hidden_size=64", "model.from_config.num_hidden_layers=2",
         "model.from_config.intermediate_size=128", "data.max_length=32", "train.device=cpu"]


def setup():
    from hposweep.config import load
    from hposweep.data import FoldData, label_list, synthetic_ner

    cfg = load(REPO / "configs/smoke.yaml", MODEL).config
    examples = synthetic_ner(N_TRAIN + N_VALIDATION, seed=0)
    fold = FoldData(examples[:N_TRAIN], examples[N_TRAIN:], label_list(examples), None)
    return cfg, fold


def builtin_once(cfg, fold) -> float:
    from hposweep.api import TrialContext
    from hposweep.training.builtin import train

    ctx = TrialContext(cfg, "tiny", 0, None, 42, "macro-f1-span", checkpoint_dir=None,
                       resume_dir=None, _report=lambda v, s: None, _should_prune=lambda: False,
                       _log_metrics=lambda m, s: None, _warn=print)
    start = time.perf_counter()
    train({"learning_rate": LR, "batch_size": BATCH, "epochs": EPOCHS}, fold, ctx)
    return time.perf_counter() - start


def hf_trainer_once(cfg, fold) -> float:
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from hposweep.training.builtin import _encode_tokens, _pad, seed_everything
    from hposweep.training.model import build_model, word_level_tokenizer

    start = time.perf_counter()
    seed_everything(42)
    tokenizer = word_level_tokenizer(fold.train + fold.validation, cfg.data.max_length)
    model = build_model(cfg, "tiny", fold.labels, tokenizer, None)
    ids = {label: i for i, label in enumerate(fold.labels)}
    train_set = _encode_tokens(tokenizer, fold.train, ids, cfg.data.max_length)
    eval_set = _encode_tokens(tokenizer, fold.validation, ids, cfg.data.max_length)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=BATCH, per_device_eval_batch_size=BATCH,
            num_train_epochs=EPOCHS, learning_rate=LR, eval_strategy="epoch", save_strategy="no",
            report_to=[], logging_strategy="no", disable_tqdm=True, use_cpu=True, seed=42,
            max_grad_norm=1.0, lr_scheduler_type="linear", warmup_steps=0)
        trainer = Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                          data_collator=lambda batch: _pad(batch, tokenizer.pad_token_id, True))
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return time.perf_counter() - start


def main() -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    cfg, fold = setup()
    builtin_once(cfg, fold)  # warm-up: imports and first-call costs, for both
    times = {"built-in trainer": [], "transformers Trainer": []}
    for _ in range(REPEATS):  # interleaved, so machine noise hits both alike
        times["built-in trainer"].append(builtin_once(cfg, fold))
        times["transformers Trainer"].append(hf_trainer_once(cfg, fold))
    sequences = N_TRAIN * EPOCHS
    print(f"tiny BERT (hidden 64, 2 layers), {N_TRAIN} x <=32-token sequences, {EPOCHS} epochs, "
          f"batch {BATCH}, CPU, median of {REPEATS}")
    print(f"{'trainer':<24}{'median s':>10}{'seq/s':>10}")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, seconds in medians.items():
        print(f"{name:<24}{seconds:>10.2f}{sequences / seconds:>10.0f}")
    ratio = medians["transformers Trainer"] / medians["built-in trainer"]
    print(f"built-in / Trainer throughput = {ratio:.2f}x (target >= 1.0)")


if __name__ == "__main__":
    main()
