"""The time loop's compiled twin (numba), used when the ``fast`` extra is installed (#14)."""
