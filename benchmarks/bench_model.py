"""Training-step speed of every preset and the cost of each hook mode, in one run.

For each preset and length it times a full training step (forward, backward, AdamW) and reports
samples/s, the ratios cbat_v2/baseline, summary/off, capture/off, and off/bare, where "bare" is the same
model with its hook points replaced by a plain pass-through (a build with no hook code). Peak memory is
the CUDA allocator's peak on GPU and the growth of the process's peak RSS on CPU (each preset in a fresh
subprocess, so the figures do not mix).

    python benchmarks/bench_model.py                      # CPU: small default and paper lengths
    python benchmarks/bench_model.py --device cuda --bf16 --lengths paper --out table.csv
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import torch

import cbat
from cbat.batches import DeviceBatches
from cbat.hooks import HookPoint

LENGTHS = {"small": (600, 400), "paper": (3000, 2000)}


class _BarePoint(HookPoint):
    """A hook point with the hook machinery gone: nn.Module.__call__ is skipped entirely."""

    def __call__(self, x, meta=None):
        return x


def strip_hook_points(model: torch.nn.Module) -> torch.nn.Module:
    for module in model.modules():
        if isinstance(module, HookPoint):
            module.__class__ = _BarePoint
    return model


def _batch(batch: int, e_len: int, p_len: int, device: str):
    gen = torch.Generator().manual_seed(0)
    def onehot(length):
        codes = torch.randint(0, 4, (batch, length), generator=gen)
        return torch.nn.functional.one_hot(codes, 4).float().transpose(1, 2).contiguous().to(device)
    labels = torch.randint(0, 2, (batch,), generator=gen).float().to(device)
    return onehot(e_len), onehot(p_len), labels


def time_steps(model, inputs, mode: str, steps: int, device: str, bf16: bool) -> tuple[float, float]:
    """Median seconds per training step and peak CUDA memory (MiB, NaN on CPU)."""
    e, p, y = inputs
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    record_mode = "off" if mode == "bare" else mode
    with cbat.record(model, mode=record_mode, max_samples=1) as trace:
        for i in range(steps + 2):  # two warm-up steps
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
                loss = torch.nn.functional.binary_cross_entropy_with_logits(model(e, p).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device == "cuda":
                torch.cuda.synchronize()
            if i >= 2:
                times.append(time.perf_counter() - start)
            trace.next_step()
            trace.captured.clear()  # capture keeps a few samples per step; do not grow across steps
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")
    return statistics.median(times), peak


def bench_one(preset: str, length: str, batch: int, steps: int, device: str, bf16: bool) -> dict:
    e_len, p_len = LENGTHS[length]
    inputs = _batch(batch, e_len, p_len, device)
    row = {"preset": preset, "length": length, "batch": batch, "device": device, "bf16": bf16}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for mode in ("off", "summary", "capture", "bare"):
        model = cbat.build_model(cbat.preset(preset), seed=0).to(device).train()
        if mode == "bare":
            strip_hook_points(model)
        seconds, peak = time_steps(model, inputs, mode, steps, device, bf16)
        row[f"{mode}_ms"] = 1000 * seconds
        row[f"{mode}_peak_mib"] = peak
        if mode == "off" and device == "cpu":
            row["off_peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before
    row["samples_per_s"] = batch / (row["off_ms"] / 1000)
    return row


def time_epoch(preset: str, n_pairs: int, batch: int, device: str, bf16: bool) -> dict:
    """One training epoch over ``n_pairs`` random pairs at paper length, fed by ``DeviceBatches``."""
    e_len, p_len = LENGTHS["paper"]
    rng = np.random.default_rng(0)
    codes = SimpleNamespace(enhancer=rng.integers(0, 4, (n_pairs, e_len), dtype=np.uint8),
                            promoter=rng.integers(0, 4, (n_pairs, p_len), dtype=np.uint8))
    labels = torch.as_tensor(rng.integers(0, 2, n_pairs), dtype=torch.float32, device=device)
    model = cbat.build_model(cbat.preset(preset), seed=0).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = DeviceBatches(codes, device)
    order = torch.randperm(n_pairs)
    def step(index):
        e, p = batches.onehot(index)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(e, p).float(), labels[index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    step(order[:batch])  # warm-up (kernel selection)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for first in range(0, n_pairs, batch):
        step(order[first:first + batch])
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"preset": preset, "n_pairs": n_pairs, "batch": batch, "epoch_s": seconds, "pairs_per_s": n_pairs / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--lengths", nargs="+", default=["small", "paper"], choices=list(LENGTHS))
    parser.add_argument("--presets", nargs="+", default=list(cbat.PRESETS))
    parser.add_argument("--batch", type=int, nargs=2, default=None, metavar=("SMALL", "PAPER"),
                        help="batch sizes (default: 32 and 4 on CPU, 256 and 128 on CUDA)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--epoch-pairs", type=int, default=0,
                        help="also time one epoch of the baseline and cbat_v2 over this many paper-length pairs")
    parser.add_argument("--out", help="also write the table as CSV")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: "<preset>:<length>:<batch>" in a subprocess
    args = parser.parse_args()
    if args.one:
        preset, length, batch = args.one.split(":")
        print(json.dumps(bench_one(preset, length, int(batch), args.steps, args.device, args.bf16)))
        return
    batches = dict(zip(LENGTHS, args.batch or ((32, 4) if args.device == "cpu" else (256, 128))))
    import pandas as pd  # noqa: PLC0415 - only the parent needs it

    rows = []
    for length in args.lengths:
        for preset in args.presets:
            cmd = [sys.executable, __file__, "--one", f"{preset}:{length}:{batches[length]}", "--steps",
                   str(args.steps), "--device", args.device] + (["--bf16"] if args.bf16 else [])
            rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
            print(f"{length:6s} {preset:9s} {rows[-1]['off_ms']:9.1f} ms/step", file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    table["summary/off"] = table["summary_ms"] / table["off_ms"]
    table["capture/off"] = table["capture_ms"] / table["off_ms"]
    table["off/bare"] = table["off_ms"] / table["bare_ms"]
    base = table[table.preset == "baseline"].set_index("length")["off_ms"]
    table["vs_baseline_time"] = table["off_ms"] / table["length"].map(base)
    cols = ["length", "preset", "batch", "samples_per_s", "off_ms", "summary/off", "capture/off", "off/bare",
            "vs_baseline_time", "off_peak_mib"]
    print(f"device: {torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, bf16={args.bf16}")
    print(table[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.out:
        table.to_csv(args.out, index=False)
    if args.epoch_pairs:
        epochs = pd.DataFrame([time_epoch(p, args.epoch_pairs, batches["paper"], args.device, args.bf16)
                               for p in ("baseline", "cbat_v2")])
        print(epochs.to_string(index=False, float_format=lambda v: f"{v:.1f}"))


if __name__ == "__main__":
    main()
