"""Training: the built-in transformers trainer (model, batching, precision, metrics, resume
state, epoch selection, cost metrics) and finding the trainer a config names. Knows nothing
of Optuna or MLflow: it speaks :mod:`hposweep.api`. May import api, config, checkpoints
(atomic writes), objectives, errors and _testing."""
