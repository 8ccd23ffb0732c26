"""Files on disk: file-system safety (atomic writes, no symlink escapes), where every file
lives, the keep-the-best manager, trials' resume dirs and provenance. Imports config,
objectives and errors; never Optuna at module level."""
