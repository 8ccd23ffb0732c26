"""MLflow: a parent run per backbone, a child run per trial, fold runs under trials. Never
takes a sweep down. Imports config, checkpoints, reports.plots and errors."""
