"""Padding saved by ``data.group_by_length`` on the generated NER data: the share of
padded positions in one epoch's batches, shuffled vs grouped by length, for the smoke
config's tokenizer and several batch sizes and seeds (medians). Padding is computation
a transformer spends on nothing; the figure is what grouping saves of it."""

from __future__ import annotations

import statistics

from _common import REPO

SENTENCES, SEEDS, BATCHES = 2000, range(5), (16, 32, 64)


def main() -> None:
    import torch

    from hposweep.config.loading import load
    from hposweep.data.readers import synthetic_ner
    from hposweep.training.batching import LengthGroupedBatches, padding_fraction
    from hposweep.training.builtin import _encode_tokens
    from hposweep.training.model import load_tokenizer

    cfg = load(REPO / "configs/smoke.yaml", ["data.max_length=128"]).config
    examples = synthetic_ner(SENTENCES, seed=0)
    labels = sorted({t for e in examples for t in e.tags})
    tokenizer = load_tokenizer(cfg, "tiny", examples)
    rows = _encode_tokens(tokenizer, examples, {t: i for i, t in enumerate(labels)}, 128)
    lengths = [len(row["input_ids"]) for row in rows]
    print(f"generated NER data: {SENTENCES} sentences, {min(lengths)}-{max(lengths)} tokens "
          f"(median {statistics.median(lengths)}), medians over seeds {list(SEEDS)}")
    print(f"{'batch':>6}{'shuffled: padded':>20}{'grouped: padded':>18}{'positions saved':>18}")
    for batch in BATCHES:
        shuffled, grouped, saved = [], [], []
        for seed in SEEDS:
            order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(seed)).tolist()
            plain = [order[i : i + batch] for i in range(0, len(order), batch)]
            by_length = list(LengthGroupedBatches(lengths, batch, torch.Generator().manual_seed(seed)))
            shuffled.append(padding_fraction(plain, lengths))
            grouped.append(padding_fraction(by_length, lengths))
            total = [sum(max(lengths[i] for i in b) * len(b) for b in bs) for bs in (plain, by_length)]
            saved.append(1 - total[1] / total[0])
        print(f"{batch:>6}{statistics.median(shuffled):>20.1%}{statistics.median(grouped):>18.1%}"
              f"{statistics.median(saved):>18.1%}")


if __name__ == "__main__":
    main()
