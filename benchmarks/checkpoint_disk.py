"""Peak bytes under outputs/hpo/<backbone> during a 6-trial x 3-fold sweep, sampled while
it runs, against the size of one checkpoint: best-only (keep_best=1) next to the old
save-everything behaviour. Target: best-only never above keep_best + 1 checkpoints."""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from pathlib import Path

from _common import BIN, REPO, dir_bytes

OVERRIDES = ["study.max_trials=6", "k_fold.n_splits=3", "study.pruner.name=none",
             "train.epochs=1", "model.from_config.hidden_size=128",
             "model.from_config.intermediate_size=256", "model.from_config.num_hidden_layers=2",
             "mlflow.enabled=false"]


def sweep_peak(tmp: Path, save_only_best: bool) -> tuple[int, int, int]:
    """(peak bytes, final bytes, one checkpoint's bytes) of the checkpoints dir."""
    out = tmp / f"out-{save_only_best}"
    root = out / "hpo" / "tiny-bert"
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            if root.exists():
                peak = max(peak, dir_bytes(root))
            time.sleep(0.002)  # sampling interval of the measurement, not synchronisation

    sampler = threading.Thread(target=sample)
    sampler.start()
    subprocess.run([str(BIN / "hposweep"), "run", str(REPO / "configs/smoke.yaml"), *OVERRIDES,
                    f"checkpoint.save_only_best={str(save_only_best).lower()}",
                    f"output_dir={out}", "--json"], check=True, capture_output=True)
    done.set()
    sampler.join()
    one = dir_bytes(next(root.glob("trial_*")))
    return peak, dir_bytes(root), one


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = [("save_only_best=true, keep_best=1", *sweep_peak(Path(tmp), True)),
                ("save_only_best=false (every fold)", *sweep_peak(Path(tmp), False))]
    print(f"{'mode':<36}{'peak MiB':>10}{'final MiB':>11}{'peak/ckpt':>11}{'final/ckpt':>12}")
    for name, peak, final, one in rows:
        print(f"{name:<36}{peak / 2**20:>10.2f}{final / 2**20:>11.2f}{peak / one:>11.2f}"
              f"{final / one:>12.2f}")
    print(f"one checkpoint: {rows[0][3] / 2**20:.2f} MiB; target for best-only: peak/ckpt <= 2")


if __name__ == "__main__":
    main()
