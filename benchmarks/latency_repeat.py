"""latency_ms from trial to trial: repeated "trials" of one model in one process (each a
fresh model built from the smoke config after seeding, as a sweep's trials are), measured
with the warm-up-until-settled procedure (hposweep's) and with the fixed 2 warm-up + 5
timed passes it replaces (the baseline), each procedure in a fresh process of its own so
both pay the process's one-time costs in their first trial. Prints one JSON line per
procedure: every trial's latency, the first trial over the others' median, and the
spread (max / min) of trials 1..N.

    python benchmarks/latency_repeat.py [--trials 8] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fixed_2_plus_5(model, batch, device: str) -> float:
    """The baseline procedure: 2 warm-up passes, the median of 5 timed ones."""
    import torch

    inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    model.eval()
    times = []
    with torch.inference_mode():
        for i in range(7):
            sync()
            start = time.perf_counter()
            model(**inputs)
            sync()
            if i >= 2:
                times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def one_process(procedure: str, trials: int, device: str) -> dict:
    sys.path.insert(0, str(REPO))
    from hposweep.config.loading import load
    from hposweep.data.readers import build_folds, load_data
    from hposweep.training.builtin import _encode_tokens, _pad, seed_everything
    from hposweep.training.cost_metrics import latency_ms
    from hposweep.training.model import build_model, load_tokenizer

    cfg = load(REPO / "configs" / "smoke.yaml", [f"train.device={device}"]).config
    fold = build_folds(cfg, load_data(cfg))[0]
    tokenizer = load_tokenizer(cfg, "tiny-bert", fold.train + fold.validation)
    label_ids = {label: i for i, label in enumerate(fold.labels)}
    rows = _encode_tokens(tokenizer, fold.validation[:16], label_ids, cfg.data.max_length)
    batch = _pad(rows, tokenizer.pad_token_id, True)
    values = []
    for trial in range(trials):
        seed_everything(trial)
        model = build_model(cfg, "tiny-bert", fold.labels, tokenizer, 0.1).to(device)
        values.append(latency_ms(model, batch, device)["latency_ms"] if procedure == "settled"
                      else fixed_2_plus_5(model, batch, device))
    others = values[1:]
    return {"procedure": procedure, "device": device, "latency_ms": [round(v, 3) for v in values],
            "first_over_others_median": round(values[0] / statistics.median(others), 2),
            "others_max_over_min": round(max(others) / min(others), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", choices=["settled", "fixed"])
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_process(args.child, args.trials, args.device)))
        return
    for procedure in ("fixed", "settled"):
        subprocess.run([sys.executable, __file__, "--child", procedure, "--trials",
                        str(args.trials), "--device", args.device], check=True)


if __name__ == "__main__":
    main()
