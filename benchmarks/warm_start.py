"""Warm start (``study.warm_start``) vs a cold start, on the simulated sweep of
``pruning.py`` (hposweep's own trial loop, 5 folds, TPE, no pruning): a source study of
40 trials on a neighbouring objective (``_sim_trainer.neighbour``: the optimum moved a
little, as for another backbone), then 60 trials on the objective, cold and warm (the
source's top 5 enqueued), 5 sampler seeds. Figure: trials until the cold sweep's final
best true score is reached (the first trial whose true score is at least that high);
also trials until a true score within 0.005 of the optimum (0.90), and the best true
score after the first 10 trials.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import _sim_trainer
from _common import alternating, quick_mode
from pruning import run_sweep, sweep_overrides

SOURCE_TRIALS, TOP_K, FOLDS = 40, 5, 5
GOOD = 0.895  # within 0.005 of the optimum
EARLY = 10


def trials_to_reach(result: Any, target: float) -> int | None:
    """1 + the number of the first trial whose true score reaches ``target``."""
    for row in sorted(result.trials, key=lambda r: r.number):
        if row.state == "COMPLETE" and _sim_trainer.true_score(row.params) >= target - 1e-12:
            return row.number + 1
    return None


def best_of_first(result: Any, n: int) -> float:
    return max(_sim_trainer.true_score(r.params) for r in result.trials if r.number < n)


def main() -> None:
    quick = quick_mode(__doc__)
    seeds, trials = (range(2), 15) if quick else (range(5), 60)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        journal = f"journal:{tmp}/source.log"
        source = run_sweep([*sweep_overrides(Path(tmp) / "source", 99, 12 if quick else SOURCE_TRIALS,
                                             FOLDS, "_sim_trainer:neighbour"),
                            f"study.storage={journal}", "study.name=source",
                            "study.pruner.name=none"])
        for seed, order in zip(seeds, alternating(("cold", "warm"), len(seeds)), strict=True):
            results = {}
            for arm in order:
                warm = [f"study.warm_start={{from: '{journal}#source', top_k: {TOP_K}}}"] \
                    if arm == "warm" else []
                results[arm] = run_sweep([*sweep_overrides(Path(tmp) / f"{arm}-{seed}", seed, trials,
                                                           FOLDS), "study.pruner.name=none", *warm])
            target = _sim_trainer.true_score(results["cold"].best_params)
            rows.append({"target": target, **{arm: trials_to_reach(r, target)
                                              for arm, r in results.items()},
                         "warm_best": _sim_trainer.true_score(results["warm"].best_params),
                         **{f"{arm}_good": trials_to_reach(r, GOOD) for arm, r in results.items()},
                         **{f"{arm}_early": best_of_first(r, EARLY) for arm, r in results.items()}})
    print(f"source: {len(source.trials)} trials on the neighbouring objective (shift "
          f"{_sim_trainer.NEIGHBOUR_SHIFT}); warm start: its top {TOP_K}; {trials} trials x "
          f"{FOLDS} folds, TPE")
    print(f"{'seed':<6}{'cold final best (true)':>24}{'cold: trials':>14}{'warm: trials':>14}"
          f"{'warm final best':>17}")
    for seed, row in zip(seeds, rows, strict=True):
        warm = row["warm"] if row["warm"] is not None else f">{trials}"
        print(f"{seed:<6}{row['target']:>24.4f}{row['cold']:>14}{warm:>14}{row['warm_best']:>17.4f}")
    cold = statistics.median(r["cold"] for r in rows)
    warm_counts = [r["warm"] if r["warm"] is not None else trials + 1 for r in rows]
    warm = statistics.median(warm_counts)
    print(f"median trials to the cold sweep's final best: cold {cold:g}, warm {warm:g} "
          f"= {warm / cold:.0%} of cold (a warm sweep that never reached it counts {trials + 1})")
    good = {arm: statistics.median(r[f"{arm}_good"] or trials + 1 for r in rows)
            for arm in ("cold", "warm")}
    print(f"median trials to a true score >= {GOOD}: cold {good['cold']:g}, warm {good['warm']:g}; "
          f"per seed cold {[r['cold_good'] for r in rows]}, warm {[r['warm_good'] for r in rows]}")
    early = {arm: statistics.fmean(r[f"{arm}_early"] for r in rows) for arm in ("cold", "warm")}
    print(f"mean best true score of the first {EARLY} trials: cold {early['cold']:.4f}, "
          f"warm {early['warm']:.4f}")


if __name__ == "__main__":
    main()
