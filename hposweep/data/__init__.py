"""Datasets for a sweep: file readers, 🤗 datasets, generated NER data and deterministic
splits into folds. Imports api, config and errors."""
