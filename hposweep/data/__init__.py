"""Datasets for a sweep: file readers, 🤗 datasets, generated NER data and deterministic
splits into folds. May import api, config and errors."""
