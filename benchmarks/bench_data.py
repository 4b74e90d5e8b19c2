"""Throughput of the data layer at paper scale (3000 bp enhancers, 2000 bp promoters), in pairs per second.

    python benchmarks/bench_data.py [--n-pairs 1000] [--tasks grammar long_range diffuse sparse_strong]

generation: cbat.data.synthetic without the cache; text encoding: DNA strings -> uint8 codes (the loaders'
path); one-hot: codes -> float tensors [B, 4, L] via ds.onehot in batches of 64 (the training path).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from cbat.data import TASKS, decode, synthetic
from cbat.data.encoding import encode_many


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:10.0f} pairs/s  ({seconds:.2f} s for {n})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-pairs", type=int, default=1000)
    parser.add_argument("--enhancer-len", type=int, default=3000)
    parser.add_argument("--promoter-len", type=int, default=2000)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    args = parser.parse_args()
    synthetic("grammar", 8, seed=0, use_cache=False)  # warm-up: JASPAR matrices are read once per process
    print(f"data throughput at {args.enhancer_len}/{args.promoter_len} bp, {args.n_pairs} pairs")
    for task in args.tasks:
        start = time.perf_counter()
        ds = synthetic(task, args.n_pairs, seed=0, enhancer_len=args.enhancer_len, promoter_len=args.promoter_len,
                       use_cache=False)
        print(f"  generation  {task:14s}{_rate(len(ds), time.perf_counter() - start)}")
    enhancers = [decode(row) for row in ds.enhancer]
    promoters = [decode(row) for row in ds.promoter]
    start = time.perf_counter()
    encode_many(enhancers), encode_many(promoters)
    print(f"  text encoding {'':12s}{_rate(len(ds), time.perf_counter() - start)}")
    start = time.perf_counter()
    for batch in np.array_split(np.arange(len(ds)), max(1, len(ds) // 64)):
        ds.onehot(batch)
    print(f"  one-hot       {'':12s}{_rate(len(ds), time.perf_counter() - start)}")


if __name__ == "__main__":
    main()
