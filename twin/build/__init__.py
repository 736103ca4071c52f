"""Scenario → mosaik world. Each module resolves one part of the scenario against the net
into plain data for a simulator (plants, devices, profiles, storage, field, protection, the
DMS; names through :mod:`~twin.build.resolve`); :mod:`~twin.build.prepare` builds the whole
run from them, :mod:`~twin.build.wiring` starts the simulators and connects them."""
