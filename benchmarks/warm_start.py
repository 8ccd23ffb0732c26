"""Warm start (``study.warm_start``) vs a cold start, on the simulated sweep of
``pruning.py`` (hposweep's own trial loop, 5 folds, TPE, no pruning), 20 sampler seeds; per
seed a source study of 40 trials on a neighbouring objective (``_sim_trainer.neighbour``:
the optimum moved a little, as for another backbone; its own seed), then 60 trials on the
objective in three arms:

- ``cold``: no warm start;
- ``warm, old``: the source's top 5 run first, and TPE draws at random until 10 trials of
  this study have finished (the behaviour before the source's trials were given to the
  sampler; here the prior is withheld from the sampler, in this process);
- ``warm``: the same, and TPE models the source's 40 finished trials from the first drawn
  trial on (``hposweep.study.prior_sampler``).

Figures, medians over seeds: trials until the cold sweep's final best true score is
reached (the first trial whose true score is at least that high; a sweep that never
reaches it counts 61), as a share of the cold sweep's; trials until a true score within
one standard error of it (the cold best trial's fold scores: sample sd / sqrt(5)); trials
until a true score within 0.005 of the optimum (0.90); the best true score after 10 and
after 60 trials; each ratio with its 95 % bootstrap interval over seeds.
``WARM_START_SEEDS=n``: n seeds instead of 20.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import _sim_trainer
from _common import quick_mode
from pruning import run_sweep, sweep_overrides

SOURCE_TRIALS, TOP_K, FOLDS = 40, 5, 5
SEEDS = 20
SOURCE_SEED = 99  # seed s's source study draws with seed SOURCE_SEED + s
GOOD = 0.895  # within 0.005 of the optimum
EARLY = 10
ARMS = ("cold", "warm, old", "warm")


def trials_to_reach(result: Any, target: float) -> int | None:
    """1 + the number of the first trial whose true score reaches ``target``."""
    for row in sorted(result.trials, key=lambda r: r.number):
        if row.state == "COMPLETE" and _sim_trainer.true_score(row.params) >= target - 1e-12:
            return row.number + 1
    return None


def best_of_first(result: Any, n: int) -> float:
    return max(_sim_trainer.true_score(r.params) for r in result.trials if r.number < n)


def run_arm(arm: str, overrides: list[str], journal: str) -> Any:
    if arm == "cold":
        return run_sweep(overrides)
    warm = [*overrides, f"study.warm_start={{from: '{journal}#source', top_k: {TOP_K}}}"]
    if arm == "warm":
        return run_sweep(warm)
    from hposweep.study.warm_start import SamplerPrior

    with mock.patch.object(SamplerPrior, "trials", return_value=[]):  # the old behaviour
        return run_sweep(warm)


def main() -> None:
    quick = quick_mode(__doc__)
    seeds, trials = (range(2), 15) if quick else (range(int(os.environ.get("WARM_START_SEEDS", SEEDS))), 60)
    never = trials + 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # Relative: the warm start's ``from`` is part of the study's seed stream, and a
        # temporary directory's name would make each run draw other trials.
        os.chdir(tmp)
        for seed in seeds:
            # Each seed its own source study: one source shared by every seed would make
            # all of them ride on its draws.
            journal = f"journal:source-{seed}.log"
            run_sweep([*sweep_overrides(Path(tmp) / f"source-{seed}", SOURCE_SEED + seed,
                                        12 if quick else SOURCE_TRIALS, FOLDS,
                                        "_sim_trainer:neighbour"),
                       f"study.storage={journal}", "study.name=source", "study.pruner.name=none"])
            order = ARMS[seed % len(ARMS):] + ARMS[:seed % len(ARMS)]  # each arm first in turn
            results = {}
            for arm in order:
                where = Path(tmp) / f"{arm.replace(', ', '-')}-{seed}"
                results[arm] = run_arm(arm, [*sweep_overrides(where, seed, trials, FOLDS),
                                             "study.pruner.name=none"], journal)
            cold = results["cold"]
            target = _sim_trainer.true_score(cold.best_params)
            folds = _sim_trainer.fold_scores(cold.best_params, FOLDS)
            se = statistics.stdev(folds) / FOLDS ** 0.5
            rows.append({"target": target, "se": se, **{
                arm: {"final": trials_to_reach(r, target) or never,
                      "se": trials_to_reach(r, target - se) or never,
                      "good": trials_to_reach(r, GOOD) or never,
                      "early": best_of_first(r, EARLY),
                      "best": _sim_trainer.true_score(r.best_params)}
                for arm, r in results.items()}})
    print(f"source: a study of {12 if quick else SOURCE_TRIALS} trials per seed on the "
          f"neighbouring objective (shift "
          f"{_sim_trainer.NEIGHBOUR_SHIFT}); warm start: its top {TOP_K}; {trials} trials x "
          f"{FOLDS} folds, TPE, {len(seeds)} seeds")
    print(f"{'seed':<6}{'cold final best (true)':>24}" + "".join(f"{arm + ': trials':>18}" for arm in ARMS)
          + "".join(f"{arm + ': best':>16}" for arm in ARMS))
    for seed, row in zip(seeds, rows, strict=True):
        print(f"{seed:<6}{row['target']:>24.4f}"
              + "".join(f"{_count(row[arm]['final'], never):>18}" for arm in ARMS)
              + "".join(f"{row[arm]['best']:>16.4f}" for arm in ARMS))

    def median(arm: str, figure: str) -> float:
        return statistics.median(row[arm][figure] for row in rows)

    print(f"\n{'median over seeds':<46}" + "".join(f"{arm:>12}" for arm in ARMS))
    for figure, what in (("final", "trials to the cold sweep's final best"),
                         ("se", "trials to within 1 SE of it"),
                         ("good", f"trials to a true score >= {GOOD}")):
        cold = median("cold", figure)
        print(f"{what:<46}" + "".join(f"{median(arm, figure):>12g}" for arm in ARMS)
              + "   as % of cold: " + ", ".join(
                  f"{arm} {median(arm, figure) / cold:.0%} ({_interval(rows, arm, figure)})"
                  for arm in ARMS[1:]))
    print(f"{'best true score of the first ' + str(EARLY) + ' trials':<46}"
          + "".join(f"{median(arm, 'early'):>12.4f}" for arm in ARMS))
    print(f"{'final best true score':<46}" + "".join(f"{median(arm, 'best'):>12.4f}" for arm in ARMS))
    print(f"median standard error of the cold best trial's fold scores: "
          f"{statistics.median(r['se'] for r in rows):.4f}; a sweep that never reached a target "
          f"counts {never}")


def _interval(rows: list[dict[str, Any]], arm: str, figure: str, draws: int = 5000) -> str:
    """The 95 % bootstrap interval of the ratio of the arm's median to the cold median
    (seeds drawn with replacement): how far 20 seeds pin the ratio down."""
    rng = random.Random(0)
    ratios = sorted(
        statistics.median(r[arm][figure] for r in drawn)
        / statistics.median(r["cold"][figure] for r in drawn)
        for drawn in ([rng.choice(rows) for _ in rows] for _ in range(draws)))
    return f"95 % interval {ratios[int(0.025 * draws)]:.0%}-{ratios[int(0.975 * draws) - 1]:.0%}"


def _count(n: int, never: int) -> str:
    return f">{never - 1}" if n == never else str(n)


if __name__ == "__main__":
    main()
