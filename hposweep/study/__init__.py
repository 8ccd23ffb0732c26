"""The Optuna study: storages, samplers and pruners, what makes a resumed study compatible
(identity), opening it, the trial loop of one process, recovery of dead trials, budgets,
warm start and the search space. May import config, data (its identity), objectives,
checkpoints (paths), results, errors and _testing; never training, tracking or the console."""
