"""Throughput of scratch_rnn.dask.predict against a single-process loop over the same data (docs/dask.md).

The data is made where it is used, chunk by chunk, from a seeded generator (as a worker would read its
chunks from storage): the loop makes each chunk and calls ``model.predict`` on it in this process; Dask makes
each chunk in a task and predicts it in the next. Each configuration runs ``--repeats`` times, interleaved;
the table shows the best and the median samples a second. Usage::

    python examples/dask_throughput.py [--samples 8192] [--chunk 512] [--repeats 3]

Configurations: the loop with NumPy's BLAS at its default threads and at one thread; Dask's threaded scheduler
with two threads (BLAS at one thread); a ``distributed`` LocalCluster of worker processes, one thread each,
with 1 and 2 workers (distributed's nanny starts its workers with ``OPENBLAS_NUM_THREADS=1``).
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np

import scratch_rnn
import scratch_rnn.dask

TIMESTEPS, FEATURES, UNITS = 50, 64, 128


def model() -> scratch_rnn.Sequential:
    m = scratch_rnn.Sequential(
        [
            scratch_rnn.Input(shape=(TIMESTEPS, FEATURES)),
            scratch_rnn.LSTM(UNITS, return_sequences=True, seed=1),
            scratch_rnn.GRU(UNITS, seed=2),
            scratch_rnn.Dense(10),
        ]
    )
    return m


def make_chunk(index: int, rows: int) -> np.ndarray:
    """Chunk ``index`` of the dataset, the same wherever it is made."""
    return np.random.default_rng(index).standard_normal((rows, TIMESTEPS, FEATURES), dtype=np.float32)


def dask_input(samples: int, chunk: int):
    import dask
    import dask.array as da

    starts = range(0, samples, chunk)
    blocks = [
        da.from_delayed(
            dask.delayed(make_chunk)(i, min(chunk, samples - s)),
            shape=(min(chunk, samples - s), TIMESTEPS, FEATURES),
            dtype=np.float32,
        )
        for i, s in enumerate(starts)
    ]
    return da.concatenate(blocks)


def loop(m, samples: int, chunk: int) -> np.ndarray:
    return np.concatenate(
        [m.predict(make_chunk(i, min(chunk, samples - s)), threads=1) for i, s in enumerate(range(0, samples, chunk))]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import threadpoolctl
    from distributed import Client, LocalCluster

    m = model()
    m.predict(make_chunk(0, 2))
    expected = loop(m, args.samples, args.chunk)
    clusters = {
        n: LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.WARNING
        )
        for n in (1, 2)
    }
    clients = {n: Client(cluster) for n, cluster in clusters.items()}
    for client in clients.values():
        client.wait_for_workers(len(client.scheduler_info()["workers"]))

    def on_cluster(n):
        def run():
            with clients[n].as_current():
                return scratch_rnn.dask.predict(m, dask_input(args.samples, args.chunk)).compute()

        return run

    def threaded():
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            x = dask_input(args.samples, args.chunk)
            return scratch_rnn.dask.predict(m, x).compute(scheduler="threads", num_workers=2)

    def loop_one_blas_thread():
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            return loop(m, args.samples, args.chunk)

    configs = {
        "loop, BLAS default threads": lambda: loop(m, args.samples, args.chunk),
        "loop, BLAS 1 thread": loop_one_blas_thread,
        "dask threads=2, BLAS 1 thread": threaded,
        "LocalCluster 1 worker x 1 thread": on_cluster(1),
        "LocalCluster 2 workers x 1 thread": on_cluster(2),
    }
    rates = {name: [] for name in configs}
    for name, run in configs.items():  # warm-up and check: every configuration computes the loop's outputs
        np.testing.assert_array_equal(run(), expected, err_msg=name)
    for _ in range(args.repeats):
        for name, run in configs.items():
            start = time.perf_counter()
            run()
            rates[name].append(args.samples / (time.perf_counter() - start))
    base = max(rates["loop, BLAS default threads"])
    print(f"{args.samples} samples of {TIMESTEPS}x{FEATURES}, chunks of {args.chunk}, LSTM({UNITS}) + GRU({UNITS})")
    print(f"cores: {len(os.sched_getaffinity(0))}, load average: {os.getloadavg()}")
    print(f"{'configuration':36s} {'best/s':>9s} {'median/s':>9s} {'best vs loop':>12s}")
    for name, values in rates.items():
        print(f"{name:36s} {max(values):9.0f} {np.median(values):9.0f} {max(values) / base:12.2f}")
    for client in clients.values():
        client.close()
    for cluster in clusters.values():
        cluster.close()


if __name__ == "__main__":
    main()
