"""What a study optimizes: objectives and constraints, the Pareto arithmetic and the front as
reported. Plain Python: imports nothing of hposweep but results."""
