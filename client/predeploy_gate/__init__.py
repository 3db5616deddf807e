"""predeploy-gate: the pipeline side of predeploy-backup (standard library only, Python 3.9+)."""

__version__ = "0.1.0"
