"""hposweep: hyperparameter sweeps for PyTorch / Hugging Face transformers models."""

__version__ = "0.1.0"
