"""The Optuna study: storages, samplers and pruners, what makes a resumed study compatible
(identity), opening it, the trial loop of one process, recovery of dead trials, budgets,
warm start and the search space. Imports config, objectives, results and errors; never
training, tracking or the console."""
