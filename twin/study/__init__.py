"""Studies over many runs: ``twin compare`` (baseline vs candidate) and ``twin sweep``
(a parameter study), both on Dask.

jobs: one run as plain data and the function that runs it in a worker; executor: a list of
jobs on a Dask cluster (local or by scheduler address); compare: the verdict; sweep: the
study file and its results table.
"""
