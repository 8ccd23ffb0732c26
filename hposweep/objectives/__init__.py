"""What a study optimizes: objectives and constraints, the Pareto arithmetic and the front as
reported. May import results only."""
