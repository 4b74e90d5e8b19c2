"""Training throughput of the trainer itself (``cbat.train``), which ``bench_model.py``'s bare step leaves out.

The trainer adds to the model's step what a real run pays: batches gathered from the data set, the NaN/inf
checks of every step (host reads), the recorded hook steps (every ``hook_every``) with their loss gradients,
and the loss read-back at the end of each epoch. Validation is timed apart and left out.

Random sequences (labels random, so nothing is learnt and every run takes the same steps), one process,
presets x batch sizes in interleaved rounds after a short warm-up run per case (kernel selection).
pairs/s = training pairs of one epoch / the run's ``timings["train_s"]``.

    python benchmarks/bench_trainer.py --device cuda --presets baseline cbat_v2 --batch 128 512
    python benchmarks/bench_trainer.py --device cpu --pairs 256 --batch 16 --lengths 600 400   # a CPU smoke run
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics

import numpy as np
import pandas as pd
import torch

import cbat
from cbat.data import EPIDataset
from cbat.train import TrainSettings, train


def random_pairs(n_pairs: int, enhancer_len: int, promoter_len: int, seed: int = 0) -> EPIDataset:
    rng = np.random.default_rng(seed)
    meta = pd.DataFrame({"pair_id": np.arange(n_pairs), "cell_line": "GM12878", "chrom": "chr1",
                         "enhancer_id": np.arange(n_pairs), "promoter_id": np.arange(n_pairs)})
    return EPIDataset(rng.integers(0, 4, (n_pairs, enhancer_len), dtype=np.uint8),
                      rng.integers(0, 4, (n_pairs, promoter_len), dtype=np.uint8),
                      np.tile([0, 1], n_pairs // 2 + 1)[:n_pairs], meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--presets", nargs="+", default=["baseline", "cbat_v2"])
    parser.add_argument("--batch", type=int, nargs="+", default=[128])
    parser.add_argument("--lengths", type=int, nargs=2, default=(3000, 2000), metavar=("ENHANCER", "PROMOTER"))
    parser.add_argument("--pairs", type=int, default=12800, help="training pairs per epoch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", help="also write the rows as JSON lines")
    args = parser.parse_args()
    held_out = 256
    data = random_pairs(args.pairs + 2 * held_out, *args.lengths)
    index = np.arange(len(data))
    split = cbat.data.Split(train=index[:args.pairs], val=index[args.pairs:args.pairs + held_out],
                            test=index[args.pairs + held_out:], name="bench")

    def run(preset: str, batch: int, **extra) -> float:
        settings = TrainSettings(epochs=1, batch_size=batch, device=args.device, progress=False,
                                 eval_batch_size=held_out, **extra)
        return train(cbat.preset(preset), data, split, settings, seed=0).timings["train_s"]

    cases = [(preset, batch) for preset in args.presets for batch in args.batch]
    for preset, batch in cases:  # warm-up, untimed
        run(preset, batch, max_steps=3)
    seconds: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
    for r in range(args.rounds):
        for preset, batch in cases if r % 2 == 0 else cases[::-1]:
            seconds[preset, batch].append(run(preset, batch))
            print(f"round {r} {preset:9s} batch {batch:4d} {seconds[preset, batch][-1]:7.2f} s", flush=True)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"device: {device}, torch {torch.__version__}, {args.lengths[0]}/{args.lengths[1]} bp, {args.pairs} "
          f"training pairs, {args.rounds} rounds; median [min-max]")
    with open(args.out, "w") if args.out else contextlib.nullcontext() as out:
        for (preset, batch), values in seconds.items():
            rates = [args.pairs / s for s in values]
            row = {"preset": preset, "batch": batch, "device": device, "lengths": list(args.lengths),
                   "pairs": args.pairs, "train_s": values, "pairs_per_s": statistics.median(rates),
                   "min": min(rates), "max": max(rates)}
            print(f"{preset:9s} batch {batch:4d} {row['pairs_per_s']:9.0f} pairs/s [{row['min']:.0f}-{row['max']:.0f}]")
            if out is not None:
                out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
