"""What one process prints: live progress and the trial table, summary and front panels.
May import results only."""
