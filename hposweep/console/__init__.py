"""What one process prints: live progress and the trial table, summary and front panels.
Imports results only."""
