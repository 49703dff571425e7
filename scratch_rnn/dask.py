"""Batch inference over a ``dask.array`` (the ``dask`` extra, #14)."""
