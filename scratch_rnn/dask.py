"""Batch inference over a ``dask.array``: datasets bigger than memory, on one machine or a cluster (#14).

:func:`predict` takes a model and a ``dask.array`` chunked along the batch axis and returns the model's
outputs as a ``dask.array`` with the same batch chunks, lazily: nothing runs until ``.compute()``,
``.to_zarr(...)`` or the like. Each chunk is one task, ``model.predict(chunk)``; the model enters the graph
once, as a single piece of data every task depends on, so the scheduler ships it to a worker once (and a
worker keeps it while its tasks need it), never once per chunk. Dask does the scheduling: the local
threaded scheduler (the default), a ``distributed`` cluster on this machine with several worker processes,
or a remote one (``Client("tcp://host:8786")``), with no change here: :func:`predict` builds a graph and
whichever scheduler is active runs it.

Needs the ``dask`` extra (``pip install 'scratch-rnn[dask]'``); Dask is imported when :func:`predict` is
called, never by ``import scratch_rnn`` (``import scratch_rnn.dask`` is the entry point).
"""

from __future__ import annotations

import numpy as np

from scratch_rnn.models import Model, Sequential
from scratch_rnn.parallel import check_threads


def predict(model, x, *, threads: int = 1):
    """``model.predict`` over ``x``, chunk by chunk, as a lazy ``dask.array``.

    Args:
        model: a :class:`~scratch_rnn.Sequential` or :class:`~scratch_rnn.Model` without stateful layers
            (its chunks run in any order, on any worker). Its layers pickle, so it travels to worker processes.
        x: a ``dask.array`` ``(batch, ...)`` chunked along the batch axis only (every other axis one chunk:
            a sample is never cut), or for a model with several inputs a list of them with the same batch
            chunks. ``x.rechunk({1: -1, 2: -1})`` puts a whole sample in each chunk.
        threads: the threads each chunk's ``model.predict`` may split its batch across
            (:mod:`scratch_rnn.parallel`); 1 by default, since Dask already runs a task per thread or
            worker, and both together would ask for more threads than the cores.

    Returns:
        A ``dask.array`` (a list of them for a model with several outputs) with ``x``'s batch chunks; the
        other axes are the model's output shape, one chunk each. Its dtype is the model's output dtype.

    A chunk's outputs are the same bits ``model.predict`` computes for those rows. Against one call on the
    whole batch they are the same bits where BLAS computes each row of a product alike in both (OpenBLAS does,
    but for a one-row chunk, a matrix-vector product, and, on SkylakeX, for products of up to about 10^6
    multiply-adds in one and more in the other, which take other kernels: an ulp or so; see
    :mod:`scratch_rnn.parallel`).
    """
    import dask
    import dask.array as da

    threads = check_threads(threads, "threads")
    inputs = _inputs(model, x, da)
    outputs = _probe(model, inputs)  # (shape after the batch, dtype) of each output, from a zero sample
    # The model is one node of the graph, a piece of data the tasks depend on: serialised once with the
    # graph, sent to a worker once. ``traverse=False``: it is not a collection to look into.
    shipped = dask.delayed(model, traverse=False)
    # One task per batch chunk: every input's chunk in, the list of the model's outputs out (an array of
    # objects, one per chunk, that only the selections below read).
    arguments = []
    for i, array in enumerate(inputs):  # index "b" is the batch axis; a sample's axes are one chunk each
        arguments += [array, "b" + "".join(chr(ord("c") + 8 * i + axis) for axis in range(array.ndim - 1))]
    results = da.blockwise(
        _predict_block,
        "b",
        *arguments,
        shipped,
        None,
        len(inputs) > 1,
        None,
        threads,
        None,
        concatenate=True,
        dtype=object,
        meta=np.empty((0,), object),
    )
    arrays = [
        results.map_blocks(
            _select,
            index,
            new_axis=list(range(1, 1 + len(shape))),
            chunks=(inputs[0].chunks[0], *((size,) for size in shape)),
            dtype=dtype,
            meta=np.empty((0,) * (1 + len(shape)), dtype),
        )
        for index, (shape, dtype) in enumerate(outputs)
    ]
    return arrays if len(arrays) > 1 or (isinstance(model, Model) and not model._single_output) else arrays[0]


def _predict_block(*arguments):
    """One task: the model on one chunk of every input; returns the list of its outputs (a worker's side of
    :func:`predict`). ``arguments`` is the inputs' chunks, then the model, whether it takes a list, threads."""
    *blocks, model, as_list, threads = arguments
    result = model.predict(blocks if as_list else blocks[0], threads=threads)
    return result if isinstance(result, list) else [result]


def _select(results, index: int):
    """Output ``index`` of one chunk's list of outputs."""
    return results[index]


def _inputs(model, x, da) -> list:
    """``x`` as a list of dask arrays, one per model input, checked: a dask array each, chunked along the
    batch axis only, all with the same batch chunks, as many as the model has inputs."""
    if not isinstance(model, (Sequential, Model)):
        raise ValueError(
            f"Argument `model` of scratch_rnn.dask.predict must be a scratch_rnn Sequential or Model, "
            f"got {type(model).__name__}."
        )
    stateful = [layer.name for layer in _all_layers(model) if getattr(layer, "stateful", False)]
    if stateful:
        raise ValueError(
            f"Argument `model` of scratch_rnn.dask.predict must have no stateful layer (its chunks run in any "
            f"order, on any worker, so no state can carry from one to the next); stateful: {stateful}."
        )
    n_inputs = len(model.inputs) if isinstance(model, Model) else 1
    arrays = list(x) if isinstance(x, (list, tuple)) else [x]
    if len(arrays) != n_inputs:
        expected = "one dask array" if n_inputs == 1 else f"a list of {n_inputs} dask arrays (one per model input)"
        got = f"a list of {len(arrays)}" if isinstance(x, (list, tuple)) else "one array"
        raise ValueError(f"Argument `x` of scratch_rnn.dask.predict must be {expected}, got {got}.")
    for i, array in enumerate(arrays):
        name = "x" if len(arrays) == 1 else f"x[{i}]"
        if not isinstance(array, da.Array):
            raise ValueError(
                f"Argument `{name}` of scratch_rnn.dask.predict must be a dask.array.Array (for a NumPy array, "
                f"model.predict), got {type(array).__name__}."
            )
        if any(np.isnan(size) for size in array.shape):
            raise ValueError(
                f"Argument `{name}` of scratch_rnn.dask.predict must have known chunk sizes, got shape "
                f"{array.shape} (call {name}.compute_chunk_sizes() first)."
            )
        if array.ndim < 2:
            raise ValueError(f"Argument `{name}` must have a batch axis and a sample's axes, got shape {array.shape}.")
        cut = [axis for axis in range(1, array.ndim) if len(array.chunks[axis]) > 1]
        if cut:
            raise ValueError(
                f"Argument `{name}` of scratch_rnn.dask.predict must be chunked along the batch axis only (axis 0; "
                f"every other axis one chunk, so that no sample is cut), got chunks {array.chunks}: axes {cut} "
                f"have several; rechunk with {name}.rechunk({{{', '.join(f'{a}: -1' for a in cut)}}})."
            )
        if array.chunks[0] != arrays[0].chunks[0]:
            raise ValueError(
                f"Argument `{name}` of scratch_rnn.dask.predict must have the batch chunks of x[0], "
                f"{arrays[0].chunks[0]}, got {array.chunks[0]}; rechunk with {name}.rechunk({{0: x[0].chunks[0]}})."
            )
    return arrays


def _all_layers(model) -> list:
    """Every layer of the model, the layers wrapped by others (Bidirectional's, TimeDistributed's) included."""
    found, stack = [], list(model.layers)
    while stack:
        layer = stack.pop()
        found.append(layer)
        stack.extend(layer.sublayers() if hasattr(layer, "sublayers") else [])
    return found


def _probe(model, inputs) -> list[tuple[tuple, np.dtype]]:
    """Each output's shape after the batch axis and its dtype: the model run here on one zero sample
    (cheap, and exactly what the tasks will return, with no model-specific shape rules to keep in step)."""
    zeros = [np.zeros((1, *array.shape[1:]), array.dtype) for array in inputs]
    result = model.predict(zeros if isinstance(model, Model) and len(inputs) > 1 else zeros[0], threads=1)
    results = result if isinstance(result, list) else [result]
    return [(r.shape[1:], r.dtype) for r in results]
