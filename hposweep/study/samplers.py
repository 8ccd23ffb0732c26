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


def make_pruner(cfg: SweepConfig) -> Any:
    import optuna

    p = cfg.study.pruner
    max_resource = cfg.train.epochs * (cfg.k_fold.n_splits if cfg.k_fold.enabled else 1)
    if p.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials,
                                           n_warmup_steps=p.n_warmup_steps)
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=p.min_resource, max_resource=max_resource,
                                              reduction_factor=p.reduction_factor)
    if p.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=p.min_resource,
                                                      reduction_factor=p.reduction_factor)
    if p.name == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=p.p_threshold,
                                             n_startup_steps=p.n_startup_steps)
    return optuna.pruners.NopPruner()


def report_steps(cfg: SweepConfig, stored: str | None = None) -> str:
    """What the study's intermediate values are: ``fold`` (one fold score at step = fold
    index, for fold-level pruners) or ``epoch`` (each epoch's score at step
    ``fold * epochs + epoch``). Never both in one study: pruner ``none`` keeps the kind
    the study has (``stored``), epoch by default."""
    from hposweep.config.schema import FOLD_PRUNERS

    if cfg.study.pruner.name == "none":
        return stored or "epoch"
    return "fold" if cfg.study.pruner.name in FOLD_PRUNERS else "epoch"


def settle_report_steps(cfg: SweepConfig, study: Any) -> str:
    """The study's kind of steps, recorded with it. A study whose trials reported epoch
    scores cannot switch to a fold-level pruner (or back): the pruner would compare a
    fold's score with an epoch's."""
    stored = study.user_attrs.get(REPORT_STEPS_ATTR)
    wanted = report_steps(cfg, stored)
    if stored == wanted:
        return wanted
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        stored = stored or "epoch"  # studies made before it was recorded reported epochs
        if stored != wanted:
            raise UserError(
                f"study {study.study_name!r} has {stored}-step intermediate values and "
                f"study.pruner.name={cfg.study.pruner.name} reports {wanted} steps: the pruner "
                "would compare incomparable values. Keep the kind of pruner, use another "
                "study.name or --fresh")
    study.set_user_attr(REPORT_STEPS_ATTR, wanted)
    return wanted
