"""What one process prints: ``live`` (messages, progress, each trial's start and end),
``reports`` (the trial table, summary and front panels, the reading commands) and
``format`` (the text helpers both use). Imports results only."""
