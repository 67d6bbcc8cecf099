"""Training: the fall classifier (action) from skeleton sequences."""
