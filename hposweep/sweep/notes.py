"""What a study carries for whoever looks at it (optuna-dashboard, any Optuna client): a
Markdown note for the study and one per trial that kept a checkpoint."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hposweep.config.schema import SweepConfig
from hposweep.objectives.spec import constraints_of, objectives_of
from hposweep.results import (
    FOLD_VALUES_ATTR,
    RETRIED_FROM_ATTR,
    WARM_START_ATTR,
    mlflow_run_of,
)
from hposweep.study.space import describe
from hposweep.study.storage import redact_url, storage_url


def trial_note(trial: Any, kept: Any, run_link: Callable[[str], str]) -> str:
    """A trial that kept a checkpoint (``kept``: where): its MLflow run (a clickable link,
    which a user attribute is not), where its parameters came from, its fold scores and
    the checkpoint. Only such trials get a note: optuna-dashboard's page pays for every
    note on every trial (see :mod:`hposweep.study.notes`)."""
    attrs = trial.user_attrs
    lines = [f"**Trial {trial.number}** ({trial.state.name.lower()})", ""]
    run_id = mlflow_run_of(trial)
    lines.append(f"- MLflow run: {_link(run_id, run_link(run_id)) if run_id else 'not tracked'}")
    origin = _origin(attrs)
    if origin:
        lines.append(f"- {origin}")
    folds = attrs.get(FOLD_VALUES_ATTR)
    if folds:
        lines.append("- fold scores: " + ", ".join(
            f"fold {i + 1}: {v:.4g}" for i, v in enumerate(folds)))
    lines.append(f"- checkpoint: kept (the best when it finished): `{kept}`")
    return "\n".join(lines) + "\n"


def study_note(cfg: SweepConfig, study_name: str, backbone: str, best: Any,
               checkpoint: str | None, parent_link: str | None, knee: bool,
               final: Mapping[str, Any] | None = None) -> str:
    """The sweep's settings, its best trial (the knee, with a Pareto front), where that
    trial's checkpoint is, and the final model (``final.refit``) with its test metrics."""
    s = cfg.study
    objectives = ", ".join(f"`{o.metric}` ({o.goal})" for o in objectives_of(cfg))
    lines = [f"## hposweep sweep `{study_name}`", "",
             f"- backbone: `{backbone}`", f"- objective: {objectives}"]
    if constraints_of(cfg):
        lines.append("- constraints: " + ", ".join(f"`{c.key}`" for c in constraints_of(cfg)))
    lines += [f"- sampler: {s.sampler.name}, pruner: {s.pruner.name}, max_trials: {s.max_trials}",
              f"- k-fold: {cfg.k_fold.n_splits if cfg.k_fold.enabled else 'off'}, "
              f"epochs: {cfg.train.epochs}",
              f"- storage: `{redact_url(storage_url(cfg, study_name))}`",
              f"- MLflow parent run: {parent_link or 'not tracked'}",
              "", "| parameter | distribution |", "|---|---|"]
    lines += [f"| {name} | {describe(spec)} |" for name, spec in cfg.search_space.items()]
    lines.append("")
    if best is None:
        lines.append("No trial has completed yet.")
    else:
        what = "knee of the Pareto front" if knee else "best trial"
        values = ", ".join(f"{k} = {v:.4g}" for k, v in _values(cfg, best).items())
        lines.append(f"**{what}: trial {best.number}** ({values})")
        lines.append("")
        lines.append(f"checkpoint: `{checkpoint}`" if checkpoint else "checkpoint: none on disk")
    if final:
        lines += ["", f"**final model: trial {final['trial']}** refit on all "
                  f"{final['train_examples']} training examples for {final['epochs']} epochs: "
                  f"`{final['checkpoint']}`"]
        test = final.get("test_metrics") or {}
        lines += ["", "| metric | test | CV estimate |", "|---|---|---|"] if test else [
            "", "No test set (data.test): the final model is not scored."]
        lines += [f"| {k} | {v:.4g} | {_cv(final, k)} |" for k, v in sorted(test.items())]
    return "\n".join(lines) + "\n"


def _cv(final: Mapping[str, Any], metric: str) -> str:
    value = (final.get("cv") or {}).get(metric)
    return "-" if value is None else f"{value:.4g}"


def _values(cfg: SweepConfig, trial: Any) -> Mapping[str, float]:
    return {o.metric: v for o, v in zip(objectives_of(cfg), trial.values, strict=False)}


def _origin(attrs: Mapping[str, Any]) -> str | None:
    retried = attrs.get(RETRIED_FROM_ATTR)
    if retried is not None:
        return f"a retry of trial {retried} (same parameters)"
    warm = attrs.get(WARM_START_ATTR)
    if warm is None:
        return None
    source = str(warm.get("source", ""))
    if source.startswith("study:"):
        return f"warm-started from trial {warm.get('from_trial')} of study `{source[6:]}`"
    return f"enqueued (study.enqueue[{warm.get('from_trial')}])"


def _link(run_id: str, link: str) -> str:
    return f"[{run_id}]({link})" if link != run_id else f"`{run_id}`"

