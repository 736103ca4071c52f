"""dms-twin: a co-simulation digital twin around a Distribution Management System."""

__version__ = "0.1.0"
