"""The study's sampler and pruner, and the kind of steps its intermediate values are."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hposweep.config.schema import SweepConfig
from hposweep.errors import UserError
from hposweep.results import REPORT_STEPS_ATTR
from hposweep.study.seeds import stream_seed

# The samplers that model a warm start's prior trials (hposweep.study.prior_sampler).
PRIOR_SAMPLERS = ("tpe", "gp")


def make_sampler(cfg: SweepConfig, stream: str, trial_number: int, prior: Sequence[Any] = ()) -> Any:
    """The sampler that draws trial ``trial_number`` of the study ``stream``
    (:func:`hposweep.study.seeds.study_stream`), seeded from ``sampler.seed``, the study and
    the trial number. Not for ``grid`` (:mod:`hposweep.study.grid`). With ``prior`` trials
    (a warm start's, for the :data:`PRIOR_SAMPLERS`) it models them with the study's own:
    they count towards its ``n_startup_trials``.

    A new sampler per trial (samplers keep their state in the study, not in the object):
    a study replays the same draws from the same seed, in one process or across resumes,
    while processes sharing a study never draw the same stream, because each trial number
    is handed out once, and no two studies share a stream.
    """
    import optuna

    factories = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "gp": optuna.samplers.GPSampler,
        "nsga2": optuna.samplers.NSGAIISampler,
    }
    sampler = factories[cfg.study.sampler.name](
        seed=stream_seed(cfg.study.sampler.seed, stream, trial_number))
    if not prior:
        return sampler
    from hposweep.study.prior_sampler import WithPrior

    return WithPrior(sampler, prior)


def make_pruner(cfg: SweepConfig, steps: str = "estimate") -> Any:
    """The study's pruner for its kind of ``steps`` (:func:`settle_report_steps`): the
    epoch-level one of ``study.pruner.name`` (a ``folds`` test is :func:`make_fold_test`'s),
    Wilcoxon on fold steps, or none. A study of raw epoch scores (``epoch``: made before
    running estimates) keeps Optuna's own median rule, as it was made."""
    import optuna

    from hposweep.study.pruners import FoldMedianPruner
    from hposweep.study.space import largest_epochs

    p = cfg.study.pruner
    folds = cfg.k_fold.n_splits if cfg.k_fold.enabled else 1
    if p.name == "median" and steps == "epoch":
        return optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials,
                                           n_warmup_steps=p.n_warmup_steps)
    if p.name == "median":
        return FoldMedianPruner(cfg.train.epochs, folds, n_startup_trials=p.n_startup_trials,
                                n_warmup_steps=p.n_warmup_steps)
    if p.name == "hyperband":  # its resource: every fold-epoch of the longest trial
        return optuna.pruners.HyperbandPruner(min_resource=p.min_resource,
                                              max_resource=largest_epochs(cfg) * folds,
                                              reduction_factor=p.reduction_factor)
    if p.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=p.min_resource,
                                                      reduction_factor=p.reduction_factor)
    if p.name == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=p.p_threshold,
                                             n_startup_steps=p.n_startup_steps)
    return optuna.pruners.NopPruner()


def make_fold_test(cfg: SweepConfig) -> Any:
    """``study.pruner.folds``: the test a trial runs between its folds, or None."""
    from hposweep.study.pruners import FoldTest

    p = cfg.study.pruner
    return FoldTest(p.p_threshold, p.n_startup_steps) if p.folds == "wilcoxon" else None


# The kinds of intermediate values a study can hold (its REPORT_STEPS_ATTR), in words.
STEP_KINDS = {
    "estimate": "running estimates of the objective (the mean of the finished folds' scores "
                "with the current fold's score predicted from its epoch) at step fold × epochs "
                "+ epoch",
    "fold": "fold scores at step = fold index",
    "epoch": "each fold's own epoch scores at step fold × epochs + epoch (hposweep before "
             "running estimates)",
}


def report_steps(cfg: SweepConfig, stored: str | None = None) -> str:
    """What the study's intermediate values are (:data:`STEP_KINDS`): ``fold`` for a
    fold-level pruner (wilcoxon), ``estimate`` for the epoch-level ones (with or without
    ``folds``) and ``none``. A study keeps the kind it has (``stored``) where it can: a
    study of raw epoch scores (``epoch``, made before running estimates) goes on reporting
    them under ``none`` and the epoch-level pruners."""
    from hposweep.config.schema import FOLD_PRUNERS

    if cfg.study.pruner.name in FOLD_PRUNERS:
        return "fold"
    if cfg.study.pruner.name == "none" or stored == "epoch":
        return stored or "estimate"
    return "estimate"


def settle_report_steps(cfg: SweepConfig, study: Any) -> str:
    """The study's kind of steps, recorded with it. A study whose trials reported epoch
    steps (raw scores or estimates) cannot switch to a fold-level pruner, nor the other
    way: the pruner would compare a fold's score with an epoch's."""
    recorded = stored = study.user_attrs.get(REPORT_STEPS_ATTR)
    if stored is None and _has_values(study):
        stored = "epoch"  # studies made before it was recorded reported raw epoch scores
    wanted = report_steps(cfg, stored)
    if recorded == wanted:
        return wanted
    # a kind found from the values (nothing recorded) has values: no second scan
    if stored not in (None, wanted) and (recorded is None or _has_values(study)):
        keep = ("wilcoxon or none" if stored == "fold" else
                "an epoch-level pruner (median, hyperband, successive_halving) or none")
        raise UserError(
            f"study {study.study_name!r} holds {STEP_KINDS[stored].split(' (')[0]} and "
            f"study.pruner.name={cfg.study.pruner.name} would report "
            f"{STEP_KINDS[wanted].split(' (')[0]}: the pruner would compare incomparable "
            f"values. Resume it with {keep}, or use another study.name or --fresh")
    study.set_user_attr(REPORT_STEPS_ATTR, wanted)
    return wanted


def raw_steps_notice(cfg: SweepConfig, study_name: str, steps: str) -> str | None:
    """The line a study of raw epoch scores (made before running estimates) resumed with
    an epoch-level pruner gets: it prunes as before, and running estimates need a new
    study."""
    if steps != "epoch" or cfg.study.pruner.name == "none":
        return None
    name = cfg.study.pruner.name
    return (f"study {study_name!r} was made before running estimates: it goes on reporting "
            f"each fold's own epoch scores to study.pruner.name={name}, so its pruning stays "
            "fold-local as before" + (" (the median rule in practice in fold 0 only)"
                                      if name == "median" else "")
            + "; running estimates (epoch-level pruning past fold 0) need a new study: "
            "--fresh or another study.name")


def _has_values(study: Any) -> bool:
    return any(t.intermediate_values for t in study.get_trials(deepcopy=False))
