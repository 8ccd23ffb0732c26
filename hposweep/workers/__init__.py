"""``run --workers K``: the worker processes, the events they send their parent, and the
parent's live view of them. May import config, console, checkpoints (paths), objectives,
results and errors."""
