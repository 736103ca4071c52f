"""Physical models as plain functions: weather, PV, wind, EV fleet, batteries, comms, crews."""
