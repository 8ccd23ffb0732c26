"""The GPU proof in one command (``make gpu-check``), for a machine with at least one CUDA
GPU; about 8 minutes on one. Each part runs the real CLI (or the throughput benchmark) in
a fresh directory and reads the study and MLflow back:

1. throughput: ``trainer_throughput.py --device cuda`` (a BERT-base-sized model from a
   config) in fp32, bf16 (when the GPU has it natively) and fp16, against transformers'
   ``Trainer``;
2. workers: a 4-trial sweep with ``--workers 2`` on this GPU (both workers share it): every
   trial finished, each recording its device;
3. out of memory: a trial whose sampled batch (2,048 sequences of a 24-layer, 1,024-wide
   model) is too large for the card: it must complete with a smaller per-step batch
   (``micro_batch_size``, ``oom_retries`` recorded), the sampled ``batch_size`` unchanged;
4. memory from trial to trial: ``gpu_peak_mb`` of 20 trials of one configuration in one
   process must stay flat (max / min <= 1.05: nothing of a finished trial stays);
5. kill -9 and resume on the GPU: a sweep killed (SIGKILL, no cleanup) in its second
   trial, then run again, ends with every trial finished.

Prints one JSON summary on stdout (``passed`` says whether every part met its bar). On a
machine without a CUDA GPU it says so and exits 1, running nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"
GPU = ["train.device=cuda", "train.precision=auto"]
STUDY = "smoke_tiny-bert"


def hposweep(workdir: Path, *args: str, env: dict[str, str] | None = None,
             timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hposweep", "run", str(SMOKE), *args, "--json"],
                          cwd=workdir, env={**os.environ, **(env or {})}, text=True,
                          capture_output=True, timeout=timeout)


def trials(workdir: Path) -> list[Any]:
    import optuna

    db = workdir / "outputs" / "hpo" / STUDY / "study.db"
    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{db}").trials


def trial_metrics(workdir: Path) -> dict[int, dict[str, float]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'outputs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("hposweep-smoke")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return {int(r.data.tags["trial_number"]): r.data.metrics for r in runs
            if "trial_number" in r.data.tags and "fold_idx" not in r.data.tags}


def states(workdir: Path) -> dict[str, int]:
    counted: dict[str, int] = {}
    for trial in trials(workdir):
        counted[trial.state.name] = counted.get(trial.state.name, 0) + 1
    return counted


def throughput() -> dict[str, Any]:
    import torch

    precisions = "fp32,bf16,fp16" if torch.cuda.get_device_capability(0) >= (8, 0) else "fp32,fp16"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "trainer_throughput.py"),
                           "--device", "cuda", "--precision", precisions, "--repeats", "3"],
                          text=True, capture_output=True, timeout=300)
    return {"exit_code": done.returncode, "report": done.stdout.splitlines(),
            "passed": done.returncode == 0}


def device_of(trial: Any) -> dict[str, str]:
    """The device a trial recorded (``device``, ``device_name``, ``device_index``)."""
    from hposweep.results import TRIAL_ATTR

    record = trial.user_attrs.get(TRIAL_ATTR, {})
    return {k: record[k] for k in ("device", "device_name", "device_index") if k in record}


def workers(workdir: Path) -> dict[str, Any]:
    done = hposweep(workdir, *GPU, "study.max_trials=4", "--workers", "2")
    devices = sorted({json.dumps(device_of(t), sort_keys=True) for t in trials(workdir)})
    counted = states(workdir)
    return {"exit_code": done.returncode, "states": counted,
            "devices": [json.loads(d) for d in devices],
            "passed": done.returncode == 0 and counted.get("COMPLETE", 0) + counted.get("PRUNED", 0) == 4}


BIG_MODEL = ["model.from_config.hidden_size=1024", "model.from_config.num_hidden_layers=24",
             "model.from_config.num_attention_heads=16", "model.from_config.intermediate_size=4096"]


def out_of_memory(workdir: Path) -> dict[str, Any]:
    done = hposweep(workdir, *GPU, *BIG_MODEL, "study.max_trials=1", "train.epochs=1",
                    "data.synthetic.sentences=4400", "search_space.batch_size.choices=[2048]",
                    "study.pruner.name=none")
    trial = trials(workdir)[0]
    attrs = {k: trial.user_attrs.get(k) for k in ("micro_batch_size", "oom_retries")}
    return {"exit_code": done.returncode, "state": trial.state.name,
            "sampled_batch_size": trial.params.get("batch_size"), **attrs,
            "fail_reason": trial.user_attrs.get("fail_reason"),
            "passed": trial.state.name == "COMPLETE" and (attrs["oom_retries"] or 0) >= 1
            and trial.params.get("batch_size") == 2048}


def peak_memory(workdir: Path) -> dict[str, Any]:
    done = hposweep(workdir, *GPU, "study.max_trials=20", "study.pruner.name=none",
                    "search_space.batch_size.choices=[32]", "train.epochs=1",
                    "model.from_config.hidden_size=768", "model.from_config.num_hidden_layers=12",
                    "model.from_config.num_attention_heads=12",
                    "model.from_config.intermediate_size=3072", timeout=400)
    peaks = [m.get("gpu_peak_mb") for _, m in sorted(trial_metrics(workdir).items())]
    measured = [p for p in peaks if p is not None]
    ratio = max(measured) / min(measured) if measured else None
    return {"exit_code": done.returncode, "gpu_peak_mb": [round(p, 1) for p in measured],
            "max_over_min": None if ratio is None else round(ratio, 3),
            "passed": len(measured) == 20 and ratio is not None and ratio <= 1.05}


def kill_and_resume(workdir: Path) -> dict[str, Any]:
    killed = hposweep(workdir, *GPU, "study.max_trials=3",
                      env={"HPOSWEEP_KILL_AT": "trial1:fold0:epoch1"})
    resumed = hposweep(workdir, *GPU, "study.max_trials=3")
    counted = states(workdir)
    return {"killed_exit_code": killed.returncode, "resumed_exit_code": resumed.returncode,
            "states": counted,
            "passed": killed.returncode == -9 and resumed.returncode == 0
            and counted.get("COMPLETE", 0) + counted.get("PRUNED", 0) == 3}


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print(f"gpu-check: no CUDA GPU visible to this torch ({torch.__version__}, CUDA "
              f"{torch.version.cuda or 'not built in'}): run it on a machine with a GPU",
              file=sys.stderr)
        return 1
    summary: dict[str, Any] = {"device": torch.cuda.get_device_name(0),
                               "capability": list(torch.cuda.get_device_capability(0)),
                               "torch": torch.__version__}
    start = time.monotonic()
    parts = {"throughput": lambda d: throughput(), "workers": workers,
             "out_of_memory": out_of_memory, "peak_memory": peak_memory,
             "kill_and_resume": kill_and_resume}
    for name, part in parts.items():
        began = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"gpu-check-{name}-") as tmp:
            try:
                summary[name] = part(Path(tmp))
            except Exception as exc:  # one part's failure is reported, the others still run
                summary[name] = {"error": f"{type(exc).__name__}: {exc}", "passed": False}
        summary[name]["seconds"] = round(time.monotonic() - began, 1)
    summary["seconds"] = round(time.monotonic() - start, 1)
    summary["passed"] = all(summary[name]["passed"] for name in parts)
    print(json.dumps(summary, indent=2))
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
