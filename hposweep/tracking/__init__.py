"""MLflow: a parent run per backbone, a child run per trial, fold runs under trials, the
final logging. Never takes a sweep down. May import config, study, checkpoints,
objectives, reports (plots), results, interrupts, errors and _testing."""
