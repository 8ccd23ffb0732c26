"""Files on disk: file-system safety (atomic writes, no symlink followed), where every file
lives (:class:`~hposweep.checkpoints.layout.OutputLayout`), the keep-the-best manager,
``best.json`` and ``hposweep.json``, trials' resume dirs, provenance. May import objectives,
errors and _testing."""
