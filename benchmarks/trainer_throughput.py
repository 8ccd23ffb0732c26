"""Built-in trainer throughput (sequences/s) against transformers' `Trainer` on the same
model, the same encoded data, batch size, epochs, learning rate, optimizer (AdamW, linear
schedule, clipping at 1.0) and precision, alternating which runs first, medians.
Both evaluate once per epoch (ours also computes seqeval metrics; Trainer only the loss).

    python benchmarks/trainer_throughput.py                      # CPU, fp32 (target >= 1.0x)
    python benchmarks/trainer_throughput.py --device cuda --precision fp32,bf16,fp16
        # a GPU: a BERT-base-sized model built from a config (no download); targets:
        # mixed precision >= 1.1x Trainer's throughput and >= 1.8x our own fp32

On CPU the model is a tiny BERT (hidden 64, 2 layers): the loop's own overhead shows there.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from _common import REPO

N_TRAIN, N_VALIDATION, EPOCHS, LR = 2000, 200, 2, 1e-3
SIZES = {
    "cpu": ["model.from_config.hidden_size=64", "model.from_config.num_hidden_layers=2",
            "model.from_config.intermediate_size=128", "data.max_length=32"],
    "cuda": ["model.from_config.hidden_size=768", "model.from_config.num_hidden_layers=12",
             "model.from_config.num_attention_heads=12", "model.from_config.intermediate_size=3072",
             "model.from_config.max_position_embeddings=512", "data.max_length=128"],
}
BATCH = {"cpu": 32, "cuda": 32}


def setup(device: str, precision: str):
    from hposweep.config.loading import load
    from hposweep.data.readers import FoldData, label_list, synthetic_ner

    cfg = load(REPO / "configs/smoke.yaml",
               [*SIZES[device], f"train.device={device}", f"train.precision={precision}",
                "train.select_epoch=last"]).config
    examples = synthetic_ner(N_TRAIN + N_VALIDATION, seed=0)
    fold = FoldData(examples[:N_TRAIN], examples[N_TRAIN:], label_list(examples), None)
    return cfg, fold


def builtin_once(cfg, fold, batch: int) -> float:
    from hposweep.api import TrialContext
    from hposweep.training.builtin import train

    ctx = TrialContext(cfg, "tiny", 0, None, 42, "macro-f1-span", checkpoint_dir=None,
                       resume_dir=None, _report=lambda v, s: None, _should_prune=lambda: False,
                       _log_metrics=lambda m, s: None, _warn=print)
    start = time.perf_counter()
    train({"learning_rate": LR, "batch_size": batch, "epochs": EPOCHS}, fold, ctx)
    return time.perf_counter() - start


def hf_trainer_once(cfg, fold, batch: int) -> float:
    import functools

    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from hposweep.training.builtin import _encode_tokens, _pad, seed_everything
    from hposweep.training.model import build_model, load_tokenizer

    start = time.perf_counter()
    seed_everything(42)
    tokenizer = load_tokenizer(cfg, "tiny", fold.train + fold.validation)
    model = build_model(cfg, "tiny", fold.labels, tokenizer, None)
    ids = {label: i for i, label in enumerate(fold.labels)}
    train_set = _encode_tokens(tokenizer, fold.train, ids, cfg.data.max_length)
    eval_set = _encode_tokens(tokenizer, fold.validation, ids, cfg.data.max_length)
    precision = cfg.train.precision
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=batch, per_device_eval_batch_size=2 * batch,
            num_train_epochs=EPOCHS, learning_rate=LR, eval_strategy="epoch", save_strategy="no",
            report_to=[], logging_strategy="no", disable_tqdm=True,
            use_cpu=cfg.train.device == "cpu", seed=42, max_grad_norm=1.0,
            lr_scheduler_type="linear", warmup_steps=0, bf16=precision == "bf16",
            fp16=precision == "fp16")
        trainer = Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                          data_collator=functools.partial(_pad, pad_id=tokenizer.pad_token_id,
                                                          token_task=True))
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return time.perf_counter() - start


def main() -> None:
    import transformers

    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu", choices=sorted(SIZES))
    parser.add_argument("--precision", default="fp32", help="comma-separated: fp32,bf16,fp16")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    transformers.utils.logging.set_verbosity_error()
    batch = BATCH[args.device]
    sequences = N_TRAIN * EPOCHS
    medians: dict[str, dict[str, float]] = {}
    for precision in args.precision.split(","):
        cfg, fold = setup(args.device, precision)
        builtin_once(cfg, fold, batch)  # warm-up: imports and first-call costs, for both
        sides = {"built-in trainer": builtin_once, "transformers Trainer": hf_trainer_once}
        times: dict[str, list[float]] = {name: [] for name in sides}
        for repeat in range(args.repeats):  # alternating which side runs first
            order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
            for name in order:
                times[name].append(sides[name](cfg, fold, batch))
        medians[precision] = {name: statistics.median(values) for name, values in times.items()}
    print(f"{args.device}: {' '.join(SIZES[args.device])}, {N_TRAIN} sequences x {EPOCHS} epochs, "
          f"batch {batch}, median of {args.repeats}, alternating")
    print(f"{'precision':<10}{'trainer':<24}{'s/epoch':>10}{'seq/s':>10}")
    for precision, sides_medians in medians.items():
        for name, seconds in sides_medians.items():
            print(f"{precision:<10}{name:<24}{seconds / EPOCHS:>10.2f}{sequences / seconds:>10.0f}")
        ratio = sides_medians["transformers Trainer"] / sides_medians["built-in trainer"]
        target = 1.0 if precision == "fp32" else 1.1
        print(f"{precision:<10}built-in / Trainer throughput = {ratio:.2f}x (target >= {target})")
        if precision != "fp32" and "fp32" in medians:
            own = medians["fp32"]["built-in trainer"] / sides_medians["built-in trainer"]
            print(f"{precision:<10}built-in {precision} / built-in fp32 = {own:.2f}x (target >= 1.8)")


if __name__ == "__main__":
    main()
