"""The grid: element names (:mod:`~twin.grid.names`), nets built from a scenario's grid spec
(:mod:`~twin.grid.build`, the paper's grids in :mod:`~twin.grid.paper`), the grid model the
grid simulator steps (:mod:`~twin.grid.model`), IEC 60909 fault currents
(:mod:`~twin.grid.iec60909`) and element positions (:mod:`~twin.grid.geo`). No mosaik."""
