"""What the reading commands show: ``status``, ``best``, ``export`` and ``plot``. They read a
study without writing to it and never import a training library."""
