"""What the reading commands show: ``status``, ``best``, ``export``, ``plot`` and
``dashboard``. They read a study without writing to it. May import config, study,
checkpoints, objectives, tracking (to fetch artifacts), training (model classes, imported
lazily), results and errors."""
