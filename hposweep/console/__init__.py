"""What one process prints: ``live`` (messages, progress, each trial's start and end),
``reports`` (the trial table, summary and front panels, the reading commands),
``format`` (the text helpers both use) and ``streams`` (output whose reader has gone).
May import results only."""
