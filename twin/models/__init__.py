"""Physical models of the twin's surroundings: weather, PV plants, wind turbines."""
