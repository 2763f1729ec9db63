"""Public helpers for testing code built on carrier-sim: Hypothesis strategies, in-memory peers."""
