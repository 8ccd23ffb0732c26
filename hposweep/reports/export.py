"""``hposweep export``: the best trial as a production checkpoint, and its verification.

The export holds the checkpoint's files (safetensors weights, config, tokenizer,
``hposweep.json``), a model card (``README.md``) and ``MANIFEST.sha256``, the SHA-256 of
every file in ``sha256sum`` format (``sha256sum -c MANIFEST.sha256`` checks it too). It is
built in a temporary dir and renamed into place: a half-written export never carries
the final name. The source is the local best checkpoint or, when that is gone, the
``best_trial_checkpoint/`` artifact of the study's MLflow parent run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hposweep import __version__
from hposweep.checkpoints.layout import METADATA_FILE
from hposweep.checkpoints.metadata import CheckpointMetadata, trial_number_of
from hposweep.checkpoints.provenance import timestamp
from hposweep.config.schema import SweepConfig
from hposweep.errors import NothingCompleted, UserError
from hposweep.reports.status import StudyStatus
from hposweep.training.model import AUTO_MODEL

MANIFEST = "MANIFEST.sha256"
CARD = "README.md"


def export_best(cfg: SweepConfig, status: StudyStatus, target: Path,
                warn: Callable[[str], None], final: dict[str, Any] | None) -> Path:
    """Write the export of the final model (``final``: its record, ``status.final``), or
    with None of ``status``'s best trial's checkpoint, to ``target`` (new or empty)."""
    if status.best_trial is None:
        raise NothingCompleted(f"{status.backbone}: no completed trial to export")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"{target} exists and is not empty: export to a new directory")
    with tempfile.TemporaryDirectory() as download:
        source = _source_checkpoint(cfg, status, final, Path(download), warn)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex[:8]}"
        shutil.copytree(source, staging)
    for path in staging.rglob("*"):  # readable by whoever deploys it (save_pretrained: 0600)
        path.chmod(0o755 if path.is_dir() else 0o644)
    weights = [p.name for p in staging.iterdir() if p.suffix in (".bin", ".pt", ".pkl", ".pth")]
    if weights:
        warn(f"{status.backbone}: {weights} are pickle-based files; loading them runs code")
    (staging / CARD).write_text(model_card(cfg, status, staging), encoding="utf-8")
    write_manifest(staging)
    if target.exists():
        target.rmdir()  # empty, checked above
    staging.rename(target)
    return target


def select(cfg: SweepConfig, status: StudyStatus, choice: str) -> StudyStatus:
    """``export --select``: the status with the chosen member of the Pareto front as its
    best trial. ``knee``, ``trial N``, or ``METRIC <= X`` / ``METRIC >= X`` (of the kept
    members that satisfy it, the best in the first objective). Exit 2 when the choice
    names no kept member."""
    from dataclasses import replace

    from hposweep.objectives.front import front_choice
    from hposweep.objectives.spec import uses_front

    if not uses_front(cfg):
        raise UserError("--select picks a member of a Pareto front: it needs several "
                        "study.objectives or study.constraints")
    kept = [m for m in status.front if _available(cfg, m)]
    member = front_choice(cfg, kept, choice, f"{status.backbone}: --select", "kept member")
    return replace(status, best_trial=member.number,
                   best_value=member.values[status.objectives[0]], best_params=member.params,
                   best_fold_values=status.best_fold_values if member.knee else [],
                   checkpoint=member.checkpoint, mlflow_best_run_id=member.mlflow_run_id)


def _available(cfg: SweepConfig, member: Any) -> bool:
    """A member whose checkpoint is kept on disk, or logged to MLflow."""
    from hposweep.config.schema import LOG_FRONT

    logged = cfg.mlflow.log_best_checkpoint
    return member.checkpoint is not None or logged == LOG_FRONT or (member.knee and bool(logged))


def _source_checkpoint(cfg: SweepConfig, status: StudyStatus, final: dict[str, Any] | None,
                       download: Path, warn: Callable[[str], None]) -> Path:
    """The checkpoint to export: the final model (``final``, its record) or else the best
    trial's; on disk, else from the study's MLflow parent run."""
    if final is not None:
        local = Path(final["checkpoint"])
        if (local / METADATA_FILE).is_file():
            return local
        from hposweep.tracking.tracker import FINAL_ARTIFACT_PATH

        return _download(cfg, status, FINAL_ARTIFACT_PATH, "the final model", download,
                         where=f" ({local})")
    if status.checkpoint and Path(status.checkpoint).is_dir():
        return Path(status.checkpoint)
    from hposweep.config.schema import LOG_FRONT
    from hposweep.tracking.tracker import ARTIFACT_PATH, front_artifact

    artifact = (front_artifact(status.best_trial)  # type: ignore[arg-type]
                if status.front and cfg.mlflow.log_best_checkpoint == LOG_FRONT
                else ARTIFACT_PATH)
    path = _download(cfg, status, artifact, "the best checkpoint", download)
    logged = trial_number_of(path)
    if logged != status.best_trial:
        warn(f"{status.backbone}: MLflow's {artifact}/ is trial {logged}, "
             f"the study's best is trial {status.best_trial}")
    return path


def _download(cfg: SweepConfig, status: StudyStatus, artifact: str, what: str, download: Path,
              where: str = "") -> Path:
    """``artifact`` of the study's MLflow parent run, downloaded into ``download``: ``what``
    (found ``where``) is not on disk."""
    from hposweep.tracking.tracker import mlflow_client

    if not status.mlflow_parent_run_id:
        raise UserError(f"{status.backbone}: {what} is not on disk{where} and the study has no "
                        "MLflow parent run to fetch it from")
    try:
        return Path(mlflow_client(cfg).download_artifacts(status.mlflow_parent_run_id, artifact,
                                                          str(download)))
    except Exception as exc:
        raise UserError(f"{status.backbone}: {what} is not on disk and MLflow could not provide "
                        f"{artifact}/ ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200]})") from None


def model_card(cfg: SweepConfig, status: StudyStatus, checkpoint: Path) -> str:
    meta = CheckpointMetadata.read(checkpoint)
    model_config = _read_json(checkpoint / "config.json")
    labels = [model_config["id2label"][k] for k in sorted(model_config.get("id2label", {}), key=int)]
    synthetic = cfg.data.synthetic
    data = cfg.data.train or (f"generated NER data ({synthetic.sentences} sentences, seed "
                              f"{synthetic.seed})" if synthetic else "?")
    folds = status.best_fold_values
    auto_model = AUTO_MODEL[cfg.data.task]
    member = _front_member(status)
    chosen = ("final model of trial" if meta is not None and meta.refit
              else "best trial" if member is None or member.knee
              else "a trial of the Pareto front (not its knee):")
    lines = [
        f"# {status.study_name}: {chosen} {status.best_trial}",
        "",
        f"Exported by hposweep {__version__} on {timestamp()} from the sweep of `{status.backbone}`.",
        "",
        f"- task: {cfg.data.task}",
        f"- base model: `{status.backbone}`" + (" (built from `model.from_config`)"
                                                if cfg.model.from_config else ""),
        f"- labels: {', '.join(labels) if labels else '(see config.json)'}",
        f"- training data: {data}",
        *_model_lines(cfg, meta),
        f"- objective: {status.objective_metric} = {status.best_value:.4f}"
        + (f" (mean over {len(folds)} folds)" if len(folds) > 1 else ""),
        *_front_lines(status),
        f"- trained: {meta.created_at if meta else '?'} on {meta.device if meta else '?'}, "
        f"git commit {(meta and meta.git_commit) or 'unknown'}",
        "",
        "## Hyperparameters",
        "",
        "| name | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in status.best_params.items()],
        "",
        f"## {status.objective_metric} per fold",
        "",
        "| fold | value |",
        "|---|---|",
        *[f"| {i}/{len(folds)} | {v:.4f} |" for i, v in enumerate(folds, start=1)],
        "",
        *_metric_lines(meta),
        "",
        "## Versions",
        "",
        *[f"- {k} {v}" for k, v in (meta.versions if meta else {}).items()],
        "",
        "## Use",
        "",
        "```python",
        f"from transformers import {auto_model}, AutoTokenizer",
        f'model = {auto_model}.from_pretrained("path/to/this/dir")',
        'tokenizer = AutoTokenizer.from_pretrained("path/to/this/dir")',
        "```",
        "",
        f"Check the files with `hposweep export --verify DIR` or `sha256sum -c {MANIFEST}`.",
        "",
    ]
    return "\n".join(lines)


def _model_lines(cfg: SweepConfig, meta: CheckpointMetadata | None) -> list[str]:
    """Which model this is and what it was trained on: with k-fold, one fold's model,
    trained without that fold's share of the data."""
    if meta is None:
        return []
    if meta.refit:
        return [f"- model: the final model (final.refit): trial {meta.trial_number}'s "
                f"hyperparameters trained once on all {meta.train_examples} training examples "
                f"for {meta.epochs} epochs",
                f"- test set: {meta.test_examples} examples (never seen by the search)"
                if meta.test_examples else "- test set: none (the model is not scored)"]
    trained, validated = meta.train_examples, meta.validation_examples
    counted = trained is not None and validated is not None
    if meta.fold is None:
        return [f"- model: trained on {trained} examples, validated on {validated}"] if counted else []
    line = f"- model: fold {meta.fold + 1}/{meta.n_folds or cfg.k_fold.n_splits}'s model"
    if trained is not None and validated is not None:
        total = trained + validated
        line += (f", trained on {100 * trained / total:.0f}% of the training data "
                 f"({trained} of {total} examples)")
    return [line]


def _metric_lines(meta: CheckpointMetadata | None) -> list[str]:
    """The trial's metrics (mean over folds); for a final model its test metrics, beside
    the cross-validation estimate (the search's, optimistic: the best of many trials)."""
    if meta is not None and meta.refit:
        estimate = "-" if meta.objective_value is None else f"{meta.objective_value:.4f}"
        if not meta.test_metrics:
            return ["## Scores", "", f"CV estimate: {meta.objective_metric} = {estimate}; "
                    "no test set, so no test score."]
        return ["## Scores: test set vs the search's CV estimate", "",
                "| metric | test | CV estimate |", "|---|---|---|",
                *[f"| {k} | {v:.4f} | {estimate if k == meta.objective_metric else '-'} |"
                  for k, v in sorted(meta.test_metrics.items())]]
    return ["## Metrics of the trial (mean over folds)", "", "| metric | value |", "|---|---|",
            *[f"| {k} | {v:.4f} |" for k, v in sorted(meta.metrics.items() if meta else [])]]


def _front_member(status: StudyStatus) -> Any:
    """The exported trial as a member of the Pareto front, if there is one."""
    return next((m for m in status.front if m.number == status.best_trial), None)


def _front_lines(status: StudyStatus) -> list[str]:
    """With a Pareto front: the exported member's objectives and where it stands."""
    member = _front_member(status)
    if member is None:
        return []
    values = ", ".join(f"{k} = {v:.4f}" for k, v in member.values.items())
    where = "the knee" if member.knee else "a member"
    return [f"- Pareto front: {where} of {len(status.front)} ({values})"]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_manifest(directory: Path) -> None:
    lines = [f"{_sha256(p)}  {p.relative_to(directory)}" for p in _files(directory)]
    (directory / MANIFEST).write_text("\n".join(lines) + "\n")


def verify(directory: Path) -> list[str]:
    """Problems found against ``MANIFEST.sha256``; empty when every file matches."""
    manifest = directory / MANIFEST
    if not directory.is_dir():
        raise UserError(f"{directory}: directory not found")
    if not manifest.is_file():
        raise UserError(f"{directory}: no {MANIFEST} (not an hposweep export?)")
    expected: dict[str, str] = {}
    for line in manifest.read_text().splitlines():
        digest, _, name = line.partition("  ")
        expected[name] = digest
    problems = []
    present = {str(p.relative_to(directory)): p for p in _files(directory)}
    for name, digest in expected.items():
        if name not in present:
            problems.append(f"missing: {name}")
        elif _sha256(present[name]) != digest:
            problems.append(f"changed: {name}")
    problems += [f"not in the manifest: {name}" for name in sorted(set(present) - set(expected))]
    return problems
