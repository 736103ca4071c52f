"""Recording: the point schema and the stores that keep what the twin produces."""
