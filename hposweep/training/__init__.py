"""Trainers: the contract (``context``) and the built-in transformers trainer."""
