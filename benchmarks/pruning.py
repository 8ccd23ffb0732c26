"""Epoch- and fold-level pruning vs none on a simulated sweep with learning curves
(``_sim_curves.py``): 5 folds x 5 epochs x 60 trials x 5 sampler seeds, TPE.

hposweep's arms run through its own trial loop (``hposweep.sweep.run``, in this process:
the same admission, trial and report path as ``hposweep run``, minus the CLI's start-up;
in-memory study, no MLflow): none, median (running estimates), wilcoxon, median +
wilcoxon (``study.pruner: {name: median, folds: wilcoxon}``), hyperband (running
estimates), hyperband + wilcoxon, and variants of the start-up and warm-up (median's
``n_startup_trials`` 1-3 and ``n_warmup_steps`` 1, 2, 3 and ``epochs``; Hyperband's
``min_resource`` 2 and ``epochs``). The plain-script arms run the same trainer, search space
and seeded TPE in a loop of Optuna calls, reporting each fold-epoch's raw score at step
``fold x epochs + epoch``: median (what hposweep reported before running estimates),
Optuna's ``HyperbandPruner``, Optuna's ``SuccessiveHalvingPruner`` (asynchronous
successive halving: ASHA) and, when ``ray[tune]`` can be imported (``RAY_SITE`` in the
environment: a site-packages dir to append to ``sys.path``), Ray Tune's
``AsyncHyperBandScheduler`` (ASHA, its defaults but ``max_t``) driven by the same loop.
``PRUNING_ARMS=word,word``: only the unpruned arms and those whose names contain a word;
``PRUNING_SEEDS=n``: n seeds instead of 5. The plain arms draw another random stream than
hposweep's (one sampler per study, not one per trial), so ``none (plain)`` is their own
baseline; ``± SE``: the standard error over seeds of the fold-epochs to target.

An oracle arm, a reference rather than a pruner (``_oracle``), knows each trial's fold
results in advance and lets only a trial that will end as the best so far run on: what
the issue's "every arm reaching the same best" costs at the least on such trials (also
computed on the unpruned sweep's own trials, whose sampler saw every trial complete).

Figures: fold-epochs trained until the sweep's best (by its mean over folds, as the sweep
picks it) is within one standard error of the unpruned sweep's final best (its true score,
same seed; the standard error over the folds of that best trial's results), as a share
of the unpruned sweep's; fold-epochs of the whole sweep; trials pruned; the final best's
true score.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import _sim_curves
from _common import REPO, quick_mode

# name -> (low, high, log): the search space of both hposweep's and the plain script's arms
RANGES = {"learning_rate": (1.0e-5, 1.0e-3, True), "dropout": (0.0, 0.4, False),
          "warmup_ratio": (0.0, 0.2, False)}
SPACE = ["search_space={" + ", ".join(
    f"{name}: {{type: float, low: {low}, high: {high}, log: {str(log).lower()}}}"
    for name, (low, high, log) in RANGES.items()) + "}"]


# Distinct seeds draw independent streams (a trial's seed hashes the seed, the study and the
# trial number); the spacing keeps the seeds the figures were measured with.
SEED_SPACING = 10_000


def sweep_overrides(output_dir: Path, seed: int, trials: int, folds: int,
                    trainer: str = "_sim_trainer:fold_score") -> list[str]:
    return [*SPACE, f"output_dir={output_dir}", f"study.sampler.seed={seed * SEED_SPACING}",
            "study.sampler.name=tpe", f"study.max_trials={trials}", f"k_fold.n_splits={folds}",
            "study.objective_metric=score", f"train.trainer={trainer}", "train.epochs=1",
            "data.synthetic={sentences: 20, seed: 0}", "study.persist=false",
            "mlflow.enabled=false", "study.name=sim_{backbone}", "backbones=[sim]"]


def run_sweep(overrides: list[str]) -> Any:
    """One sweep through hposweep's trial loop; returns its result (trials, best)."""
    from hposweep.config.loading import load
    from hposweep.console.reports import SweepConsole
    from hposweep.sweep import backbone as sweep

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "sim.yaml"
        base.write_text(_base_config())
        loaded = load(base, overrides)
    (result,) = sweep.run(loaded, SweepConsole(mode="json"))
    return result


def _base_config() -> str:
    """configs/smoke.yaml without its search space and pruner: the benchmark's space is
    the plain script's (``RANGES``), its pruner settings hposweep's defaults."""
    from omegaconf import OmegaConf

    smoke = OmegaConf.load(REPO / "configs" / "smoke.yaml")
    del smoke["search_space"]
    del smoke.study["pruner"]
    return OmegaConf.to_yaml(smoke)


SEEDS = 5
FOLDS = 5
EPOCHS = _sim_curves.EPOCHS
HPOSWEEP_ARMS = {
    "none": ["study.pruner.name=none"],
    "median (estimates)": ["study.pruner.name=median"],
    "wilcoxon": ["study.pruner.name=wilcoxon"],
    "median + wilcoxon": ["study.pruner={name: median, folds: wilcoxon}"],
    "hyperband (estimates)": ["study.pruner.name=hyperband"],
    "hyperband + wilcoxon": ["study.pruner={name: hyperband, folds: wilcoxon}"],
    # No epoch-level decision in fold 0 (where curves cross): from fold 1 on, each step's
    # estimate predicts the trial's final value from its own fold-0 curve.
    f"median, from fold 1 (n_warmup_steps={EPOCHS})":
        [f"study.pruner={{name: median, n_warmup_steps: {EPOCHS}}}"],
    f"median + wilcoxon, from fold 1 (n_warmup_steps={EPOCHS})":
        [f"study.pruner={{name: median, folds: wilcoxon, n_warmup_steps: {EPOCHS}}}"],
    # Fewer start-up trials: median's first trials run every fold unpruned by the median
    # rule (the fold test still stops them between folds), and the target comes early.
    **{f"median + wilcoxon, from fold 1, {n} start-up trials":
       [f"study.pruner={{name: median, folds: wilcoxon, n_warmup_steps: {EPOCHS}, "
        f"n_startup_trials: {n}}}"] for n in (1, 2, 3)},
    "median, from fold 1, 2 start-up trials":
        [f"study.pruner={{name: median, n_warmup_steps: {EPOCHS}, n_startup_trials: 2}}"],
    **{f"median + wilcoxon, {n} start-up trials":
       [f"study.pruner={{name: median, folds: wilcoxon, n_startup_trials: {n}}}"] for n in (1, 2)},
    # A shorter warm-up inside fold 0: the crossing is over after a few epochs.
    **{f"median + wilcoxon, warm-up {n} steps":
       [f"study.pruner={{name: median, folds: wilcoxon, n_warmup_steps: {n}}}"]
       for n in (1, 2, 3)},
    # Hyperband's first rung later: inside fold 0 after the crossing, or at fold 0's end.
    **{f"hyperband + wilcoxon, min_resource {n}":
       [f"study.pruner={{name: hyperband, folds: wilcoxon, min_resource: {n}}}"]
       for n in (2, EPOCHS)},
    f"hyperband, min_resource {EPOCHS}":
        [f"study.pruner={{name: hyperband, min_resource: {EPOCHS}}}"],
}


def _median_everywhere(self: Any, study: Any, trial: Any) -> bool:
    """The median rule as it was before fold 0 got its own (``FoldMedianPruner``'s
    docstring): the completed trials' median at every step, fold 0's included."""
    import optuna

    from hposweep.study.pruners import fold_view
    from hposweep.study.space import epochs_of

    epochs = epochs_of(trial.params, self._epochs)
    return optuna.pruners.MedianPruner.prune(self, study, fold_view(trial, epochs))


def _oracle(self: Any, study: Any, trial: Any) -> bool:
    """Not a pruner: a reference that knows the trial's fold results in advance (the
    simulator is deterministic in the params) and prunes it at its first epoch unless it
    will end as the best so far (maximizing), which must run every fold to be the sweep's
    best. A pruner that lets every coming best so far complete trains at least this much
    on the same trials; its sampler sees other trials, though (``oracle_on``: the same on
    the unpruned sweep's own trials)."""
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    results = _sim_curves.fold_results(trial.params, FOLDS)
    return bool(done) and sum(results) / len(results) <= max(t.value for t in done)


def oracle_on(run: list[TrialCost]) -> list[TrialCost]:
    """``_oracle``'s costs on a sweep's own trials: a trial that ends as the best so far
    trains every fold-epoch, any other one fold-epoch."""
    best: float | None = None
    costed = []
    for t in run:
        new_best = t.value is not None and (best is None or t.value > best)
        best = t.value if new_best else best
        costed.append(TrialCost(t.number, FOLDS * EPOCHS if new_best else 1, t.value, t.params))
    return costed


# Arms run with hposweep's pruner patched: name -> (the arm whose settings they take, the
# patched ``FoldMedianPruner.prune``)
PATCHED = {"median (estimates), fold 0 as the others (before)": ("median (estimates)",
                                                                 _median_everywhere),
           "median + wilcoxon, fold 0 as the others (before)": ("median + wilcoxon",
                                                                _median_everywhere),
           "oracle: only a coming best so far runs on (a reference)": ("median (estimates)",
                                                                      _oracle)}


def _plain_pruners() -> dict[str, Callable[[int], Any]]:
    """The plain-script arms: a pruner per trial count (Optuna's defaults, as hposweep
    sets them where it has its own: median's 5 start-up trials)."""
    import optuna

    arms: dict[str, Callable[[int], Any]] = {
        "none (plain)": lambda folds: optuna.pruners.NopPruner(),
        "median, raw (plain; hposweep before)": lambda folds: optuna.pruners.MedianPruner(),
        "Optuna hyperband (plain)": lambda folds: optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=folds * EPOCHS, reduction_factor=3),
        "Optuna ASHA = successive halving (plain)":
            lambda folds: optuna.pruners.SuccessiveHalvingPruner(),
    }
    if _ray_asha() is not None:
        arms["Ray Tune ASHA (plain)"] = lambda folds: "ray"
    return arms


def _ray_asha() -> Any:
    """Ray Tune's ASHA scheduler class, or None when ``ray[tune]`` cannot be imported."""
    site = os.environ.get("RAY_SITE")
    if site and site not in sys.path:
        sys.path.append(site)
    try:
        from ray.tune.schedulers import AsyncHyperBandScheduler
    except ImportError:
        return None
    return AsyncHyperBandScheduler


def _suggest(trial: Any) -> dict[str, float]:
    """The benchmark's search space (``RANGES``), in Optuna calls."""
    return {name: trial.suggest_float(name, low, high, log=log)
            for name, (low, high, log) in RANGES.items()}


@dataclass
class TrialCost:
    number: int
    epochs: int  # fold-epochs trained
    value: float | None  # the objective (mean over folds) of a completed trial, else None
    params: dict[str, float]


def plain(arm: str, seed: int, trials: int, folds: int) -> list[TrialCost]:
    """A plain Optuna script: TPE seeded as hposweep seeds it, the raw fold-epoch scores
    reported at step ``fold x epochs + epoch``, pruned when the pruner (or Ray's
    scheduler) says so."""
    import optuna

    pruner = _plain_pruners()[arm](folds)
    ray = None
    if pruner == "ray":
        ray = _ray_asha()(time_attr="t", metric="score", mode="max", max_t=folds * EPOCHS)
        pruner = optuna.pruners.NopPruner()
    study = optuna.create_study(direction="maximize", pruner=pruner,
                                sampler=optuna.samplers.TPESampler(seed=seed * SEED_SPACING))
    out = []
    for _ in range(trials):
        trial = study.ask()
        params = _suggest(trial)
        handle = SimpleNamespace(trial_id=str(trial.number))
        if ray is not None:
            ray.on_trial_add(None, handle)
        trained, results, stopped = 0, [], False
        for fold in range(folds):
            scores = _sim_curves.epoch_scores(params, fold)
            for epoch, score in enumerate(scores):
                trained += 1
                step = fold * EPOCHS + epoch
                trial.report(score, step)
                if ray is not None:
                    stopped = ray.on_trial_result(None, handle, {"t": step + 1, "score": score}
                                                  ) == "STOP" and step + 1 < folds * EPOCHS
                else:
                    stopped = trial.should_prune()
                if stopped:
                    break
            if stopped:
                break
            results.append(scores[-1])
        if stopped:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            out.append(TrialCost(trial.number, trained, None, params))
        else:
            value = statistics.fmean(results)
            study.tell(trial, value)
            out.append(TrialCost(trial.number, trained, value, params))
    return out


def through_hposweep(arm: str, seed: int, trials: int, folds: int, tmp: Path) -> list[TrialCost]:
    from unittest import mock

    from hposweep.study.pruners import FoldMedianPruner

    _sim_curves.EPOCHS_RUN.clear()
    overrides = [*sweep_overrides(tmp / f"{arm}-{seed}".replace(" ", "_").replace("/", "_"), seed,
                                  trials, folds, trainer="_sim_curves:curves"),
                 f"train.epochs={EPOCHS}", *HPOSWEEP_ARMS[PATCHED[arm][0] if arm in PATCHED else arm]]
    if arm in PATCHED:
        with mock.patch.object(FoldMedianPruner, "prune", PATCHED[arm][1]):
            result = run_sweep(overrides)
    else:
        result = run_sweep(overrides)
    return [TrialCost(t.number, _sim_curves.EPOCHS_RUN.get(t.number, 0),
                      t.value if t.state == "COMPLETE" else None, t.params)
            for t in sorted(result.trials, key=lambda t: t.number)]


def cost_to(run: list[TrialCost], target: float) -> int | None:
    """Fold-epochs trained until the sweep's best completed trial (by its value) has a
    true score of at least ``target``; None if it never does."""
    spent, best = 0, None
    for t in run:
        spent += t.epochs
        if t.value is not None and (best is None or t.value > best.value):
            best = t
        if best is not None and _sim_curves.true_final(best.params) >= target:
            return spent
    return None


def final_best(run: list[TrialCost]) -> TrialCost:
    return max((t for t in run if t.value is not None), key=lambda t: t.value)


def main() -> None:
    quick = quick_mode(__doc__)
    seeds, trials, folds = ((range(2), 12, FOLDS) if quick else
                            (range(int(os.environ.get("PRUNING_SEEDS", SEEDS))), 60, FOLDS))
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # the trainers for train.trainer
    arms = [*HPOSWEEP_ARMS, *PATCHED, *_plain_pruners()]
    if os.environ.get("PRUNING_ARMS"):
        words = os.environ["PRUNING_ARMS"].split(",")
        arms = [a for a in arms if a.startswith("none") or any(w in a for w in words)]
    runs: dict[str, list[list[TrialCost]]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            order = arms if seed % 2 == 0 else arms[::-1]  # neither side always first
            for arm in order:
                runs[arm].append(through_hposweep(arm, seed, trials, folds, Path(tmp))
                                 if arm in HPOSWEEP_ARMS or arm in PATCHED
                                 else plain(arm, seed, trials, folds))
    targets = []
    for run in runs["none"]:
        best = final_best(run)
        scores = _sim_curves.fold_results(best.params, folds)
        targets.append(_sim_curves.true_final(best.params)
                       - statistics.stdev(scores) / folds ** 0.5)
    base = statistics.fmean(cost_to(r, t) or 0 for r, t in zip(runs["none"], targets, strict=True))
    offline = statistics.fmean(cost_to(oracle_on(r), t) or 0
                               for r, t in zip(runs["none"], targets, strict=True))
    total_base = statistics.fmean(sum(t.epochs for t in r) for r in runs["none"])
    print(f"{len(seeds)} seeds x {trials} trials x {folds} folds x {EPOCHS} epochs, TPE; "
          f"targets (unpruned final best's true score - 1 SE over folds): "
          + " ".join(f"{t:.4f}" for t in targets))
    print(f"the oracle on the unpruned sweep's own trials: {offline:.0f} fold-epochs to target "
          f"= {offline / base:.2f}x")
    print(f"{'arm':<52}{'to target':>10}{'± SE':>6}{'vs none':>9}{'reached':>9}{'whole sweep':>13}"
          f"{'vs none':>9}{'pruned':>8}{'final best':>12}")
    for arm, arm_runs in runs.items():
        costs = [cost_to(r, t) for r, t in zip(arm_runs, targets, strict=True)]
        # A sweep that never reaches the target counts its whole cost (a lower bound).
        paid = [c if c is not None else sum(t.epochs for t in r)
                for c, r in zip(costs, arm_runs, strict=True)]
        cost = statistics.fmean(paid)
        spread = statistics.stdev(paid) / len(paid) ** 0.5 if len(paid) > 1 else 0.0
        total = statistics.fmean(sum(t.epochs for t in r) for r in arm_runs)
        pruned = statistics.fmean(sum(t.value is None for t in r) for r in arm_runs)
        best = statistics.fmean(_sim_curves.true_final(final_best(r).params) for r in arm_runs)
        reached = sum(c is not None for c in costs)
        print(f"{arm:<52}{cost:>10.0f}{spread:>6.0f}{cost / base:>8.2f}x{reached:>6}/{len(costs)}"
              f"{total:>13.0f}{total / total_base:>8.2f}x{pruned:>8.1f}{best:>12.4f}")
        print(f"{'':<52}per seed to target: {[c for c in costs]}")


if __name__ == "__main__":
    main()
