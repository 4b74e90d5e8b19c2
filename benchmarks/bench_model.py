"""Training-step speed of every preset against the machine, and the cost of each hook mode, in one run.

For each length and preset (one subprocess each, so peak memory does not mix) it reports:

- FLOPs per pair of one training step (forward + backward of the trainer's loss), counted by
  ``torch.utils.flop_counter.FlopCounterMode`` on the reference attention path (``force_explicit``), so
  the count is the model's arithmetic, not the padding or folded bias of a fused kernel;
- pairs/s and the achieved FLOP/s of that step with hooks off;
- the FLOP/s of a square fp32 (bf16 under ``--bf16``) matrix multiply measured in the same rounds, and the
  fraction of it that the training step reaches;
- summary/off (hooks recording every step) and off/bare ("bare": hook points replaced by a class that
  skips ``nn.Module.__call__``, i.e. a build with no hook code); with ``--compile`` also compiled/eager.

Modes are interleaved within one process (round r runs off, summary, bare, matmul[, compiled], the order
reversed every other round), warm-up steps are excluded, and every figure is the median over rounds with
its min-max; each ratio is computed within a round. A ratio is only called different from 1 when its
whole min-max range lies on one side of 1 ("~1" otherwise).

    python benchmarks/bench_model.py                          # CPU: 600/400 (batch 32), 3000/2000 (batch 8)
    python benchmarks/bench_model.py --quick                  # baseline and cbat_v2, few rounds
    python benchmarks/bench_model.py --device cuda --bf16 --lengths paper --out table.csv
    python benchmarks/bench_model.py --device cuda --bf16 --presets baseline cbat_v2 --profile   # host- or GPU-bound
"""
from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import cbat
from cbat.batches import DeviceBatches
from cbat.hooks import HookPoint
from cbat.losses import CBATLoss
from cbat.train import HOOK_SAMPLE

from bench_trainer import random_pairs  # a sibling script: benchmarks/ is on sys.path when run

LENGTHS = {"small": (600, 400), "paper": (3000, 2000)}
MATMUL_SIZE = 2048


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


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class _Mode:
    """One model (same seed for every mode), its optimiser and, for "summary", an open recording."""

    def __init__(self, name: str, preset: str, inputs, device: str, bf16: bool, compile_mode: str = "default") -> None:
        self.name, self.inputs, self.device, self.bf16 = name, inputs, device, bf16
        cfg = cbat.preset(preset)
        self.model = cbat.build_model(cfg, seed=0).to(device).train()
        if name == "bare":
            strip_hook_points(self.model)
        self.forward = torch.compile(self.model, mode=compile_mode) if name == "compiled" else self.model
        self.graphs = name == "compiled" and compile_mode == "reduce-overhead"
        self.loss = CBATLoss(cfg, positive_rate=0.5).to(device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        # "summary" records as the trainer does: every step here, with the trainer's attention sample
        self._recording = cbat.record(self.model, mode="summary" if name == "summary" else "off",
                                      sample=HOOK_SAMPLE if name == "summary" else None)
        self.trace = self._recording.__enter__()

    def step(self) -> None:
        e, p, y = self.inputs
        aux = {} if "sparsity" in self.loss.active_aux else None  # as the trainer asks
        if self.graphs:  # CUDA graphs: a new iteration may overwrite the previous one's graph outputs
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast(device_type=self.device, dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.forward(e, p, aux=aux)
        total = self.loss(logits, y, aux)["total"]
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        self.trace.next_step()
        self.trace._rows.clear()  # recording cost is measured; the rows themselves are not kept

    def close(self) -> None:
        self._recording.__exit__(None, None, None)


def flops_per_pair(preset: str, inputs, device: str) -> float:
    """Forward + backward FLOPs of the trainer's loss per pair, on the reference attention path."""
    cfg = cbat.preset(preset)
    model = cbat.build_model(cfg, seed=0).to(device).train()
    for module in model.modules():
        if hasattr(module, "force_explicit"):
            module.force_explicit = True
    e, p, y = inputs
    loss_fn = CBATLoss(cfg, positive_rate=0.5).to(device)
    aux = {} if "sparsity" in loss_fn.active_aux else None
    with FlopCounterMode(display=False) as counter:
        loss_fn(model(e, p, aux=aux), y, aux)["total"].backward()
    return counter.get_total_flops() / len(y)


def matmul_seconds(device: str, bf16: bool, reps: int = 3) -> float:
    """Seconds per square matrix multiply (median of ``reps``)."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(MATMUL_SIZE, MATMUL_SIZE, generator=gen).to(device, dtype) for _ in range(2))
    times = []
    for _ in range(reps):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def bench_one(preset: str, length: str, batch: int, rounds: int, steps: int, warmup: int, device: str,
              bf16: bool, compile_: bool, compile_mode: str = "default") -> dict:
    e_len, p_len = LENGTHS[length]
    inputs = _batch(batch, e_len, p_len, device)
    row = {"preset": preset, "length": length, "batch": batch, "device": device, "bf16": bf16,
           "rounds": rounds, "steps": steps}
    names = ["off", "summary", "bare"] + (["compiled"] if compile_ else [])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    modes = {}
    for name in names:  # build and warm up (kernel selection, allocator, compilation) outside the timing
        modes[name] = _Mode(name, preset, inputs, device, bf16, compile_mode)
        start = time.perf_counter()
        for _ in range(warmup):
            modes[name].step()
        _sync(device)
        if name == "off":
            row["peak_mib"] = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else
                               resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before)
        if name == "compiled":
            row["compile_s"] = time.perf_counter() - start
    matmul_seconds(device, bf16)  # warm-up
    per_step: dict[str, list[float]] = {name: [] for name in names + ["matmul"]}
    order = names + ["matmul"]
    for r in range(rounds):
        for name in (order if r % 2 == 0 else order[::-1]):
            if name == "matmul":
                per_step[name].append(matmul_seconds(device, bf16))
                continue
            _sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                modes[name].step()
            _sync(device)
            per_step[name].append((time.perf_counter() - start) / steps)
    for mode in modes.values():
        mode.close()
    row["flops_per_pair"] = flops_per_pair(preset, inputs, device)  # after the peak-memory reading
    matmul_flops = [2 * MATMUL_SIZE**3 / s for s in per_step["matmul"]]
    step_flops = [row["flops_per_pair"] * batch / s for s in per_step["off"]]
    figures = {
        "ms_per_step": [1000 * s for s in per_step["off"]],
        "pairs_per_s": [batch / s for s in per_step["off"]],
        "gflop_per_s": [f / 1e9 for f in step_flops],
        "matmul_gflop_per_s": [f / 1e9 for f in matmul_flops],
        "fraction_of_matmul": [f / m for f, m in zip(step_flops, matmul_flops)],
        "summary/off": [s / o for s, o in zip(per_step["summary"], per_step["off"])],
        "off/bare": [o / b for o, b in zip(per_step["off"], per_step["bare"])],
    }
    if compile_:
        figures["compiled/eager"] = [c / o for c, o in zip(per_step["compiled"], per_step["off"])]
    for key, values in figures.items():
        row[key] = _spread(values)
    return row


def verdict(spread: dict) -> str:
    """">1" or "<1" only when the whole min-max range lies on that side of 1, else "~1"."""
    if spread["min"] > 1:
        return ">1"
    if spread["max"] < 1:
        return "<1"
    return "~1"


def time_epoch(preset: str, n_pairs: int, batch: int, device: str, bf16: bool) -> dict:
    """One training epoch over ``n_pairs`` random pairs at paper length, fed by ``DeviceBatches``."""
    pairs = random_pairs(n_pairs, *LENGTHS["paper"])
    labels = torch.as_tensor(pairs.labels, dtype=torch.float32, device=device)
    cfg = cbat.preset(preset)
    model = cbat.build_model(cfg, seed=0).to(device).train()
    loss_fn = CBATLoss(cfg, positive_rate=0.5).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = DeviceBatches(pairs, device)
    order = torch.randperm(n_pairs).to(device)  # on the device, as the trainer keeps it: no host copy per step

    def step(index):
        e, p = batches.onehot(index)
        aux = {} if "sparsity" in loss_fn.active_aux else None
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            logits = model(e, p, aux=aux)
        total = loss_fn(logits, labels[index], aux)["total"]
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
    step(order[:batch])  # warm-up (kernel selection)
    _sync(device)
    start = time.perf_counter()
    for first in range(0, n_pairs, batch):
        step(order[first:first + batch])
    _sync(device)
    seconds = time.perf_counter() - start
    return {"preset": preset, "n_pairs": n_pairs, "batch": batch, "epoch_s": seconds, "pairs_per_s": n_pairs / seconds}


LAUNCHES = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx")


def profile_step(preset: str, batch: int, device: str, bf16: bool, steps: int = 3) -> dict:
    """Where a paper-length training step's time goes on a GPU: wall time against the time its kernels keep
    the GPU busy (``torch.profiler``), and the kernel launches per step. Busy well below wall: the step waits
    on the host launching kernels, which CUDA graphs or a larger batch remove; busy near wall: arithmetic."""
    from torch.profiler import ProfilerActivity, profile
    mode = _Mode("off", preset, _batch(batch, *LENGTHS["paper"], device), device, bf16)
    for _ in range(steps):
        mode.step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        mode.step()
    _sync(device)
    wall = (time.perf_counter() - start) / steps
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            mode.step()
        _sync(device)
    events = prof.key_averages()
    busy = sum(e.self_device_time_total for e in events if e.device_type.name == "CUDA") / steps / 1e3
    launches = sum(e.count for e in events if e.key in LAUNCHES) / steps
    mode.close()
    return {"preset": preset, "batch": batch, "wall_ms": 1000 * wall, "gpu_busy_ms": busy,
            "launches_per_step": launches}


def _cell(spread: dict, fmt: str) -> str:
    return f"{spread['median']:{fmt}} [{spread['min']:{fmt}}-{spread['max']:{fmt}}]"


def format_table(rows: list[dict]) -> str:
    """Markdown table: medians with [min-max] over rounds; ratios with their verdict against 1."""
    compiled = any("compiled/eager" in row for row in rows)
    head = ["length", "preset", "batch", "GFLOP/pair", "pairs/s", "GFLOP/s", "matmul GFLOP/s", "fraction",
            "summary/off", "off/bare", "peak MiB"] + (["compiled/eager", "compile s"] if compiled else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        e_len, p_len = LENGTHS[row["length"]]
        cells = [f"{e_len}/{p_len}", row["preset"], str(row["batch"]), f"{row['flops_per_pair'] / 1e9:.2f}",
                 _cell(row["pairs_per_s"], ".1f"), _cell(row["gflop_per_s"], ".1f"),
                 _cell(row["matmul_gflop_per_s"], ".0f"), _cell(row["fraction_of_matmul"], ".2f"),
                 f"{_cell(row['summary/off'], '.2f')} {verdict(row['summary/off'])}",
                 f"{_cell(row['off/bare'], '.2f')} {verdict(row['off/bare'])}", f"{row['peak_mib']:.0f}"]
        if compiled:
            cells += [f"{_cell(row['compiled/eager'], '.2f')} {verdict(row['compiled/eager'])}",
                      f"{row['compile_s']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--lengths", nargs="+", default=["small", "paper"], choices=list(LENGTHS))
    parser.add_argument("--presets", nargs="+", default=list(cbat.PRESETS))
    parser.add_argument("--batch", type=int, nargs=2, default=None, metavar=("SMALL", "PAPER"),
                        help="batch sizes (default: 32 and 8 on CPU, 256 and 128 on CUDA)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per mode per round (default 2)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per mode first (default 2)")
    parser.add_argument("--compile", action="store_true", help="also time a torch.compile'd model (minutes on CPU)")
    parser.add_argument("--compile-mode", default="default", choices=["default", "reduce-overhead", "max-autotune"],
                        help="torch.compile mode of --compile (reduce-overhead: CUDA graphs)")
    parser.add_argument("--quick", action="store_true",
                        help="a short run: baseline and cbat_v2, 3 rounds of 1 step (unless given)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per preset and length")
    parser.add_argument("--epoch-pairs", type=int, default=0,
                        help="also time one epoch of the baseline and cbat_v2 over this many paper-length pairs")
    parser.add_argument("--profile", action="store_true",
                        help="CUDA: per preset at paper length, wall ms/step against GPU-busy ms/step and kernel "
                             "launches per step, instead of the table")
    parser.add_argument("--out", help="also write the rows as JSON lines")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: "<preset>:<length>:<batch>" in a subprocess
    args = parser.parse_args()
    if args.quick:
        given = set(sys.argv)
        args.rounds = args.rounds if "--rounds" in given else 3
        args.steps = args.steps if "--steps" in given else 1
        args.presets = args.presets if "--presets" in given else ["baseline", "cbat_v2"]
    if args.one:
        preset, length, batch = args.one.split(":")
        print(json.dumps(bench_one(preset, length, int(batch), args.rounds, args.steps, args.warmup, args.device,
                                   args.bf16, args.compile, args.compile_mode)))
        return
    batches = dict(zip(LENGTHS, args.batch or ((32, 8) if args.device == "cpu" else (256, 128))))
    if args.profile:
        for preset in args.presets:
            print(json.dumps(profile_step(preset, batches["paper"], args.device, args.bf16)), flush=True)
        return
    rows, failed = [], []
    # Each row reaches --out as soon as it is measured, and a preset that fails or runs past --timeout is
    # reported and skipped: on a lent GPU with minutes to spend, one failure must not lose the other rows.
    with open(args.out, "w") if args.out else contextlib.nullcontext() as out:
        for length in args.lengths:
            for preset in args.presets:
                cmd = [sys.executable, __file__, "--one", f"{preset}:{length}:{batches[length]}", "--device",
                       args.device, "--rounds", str(args.rounds), "--steps", str(args.steps), "--warmup",
                       str(args.warmup)]
                cmd += (["--bf16"] if args.bf16 else []) + (["--compile", "--compile-mode", args.compile_mode]
                                                             if args.compile else [])
                try:
                    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                    problem = f"failed:\n{done.stderr[-3000:]}" if done.returncode != 0 else None
                except subprocess.TimeoutExpired:
                    problem = f"ran past the {args.timeout:.0f} s limit"
                if problem is not None:
                    failed.append(f"{preset} at {length} {problem}")
                    print(f"bench_model: {failed[-1]}", file=sys.stderr, flush=True)
                    continue
                rows.append(json.loads(done.stdout.splitlines()[-1]))
                print(f"{length:6s} {preset:9s} {rows[-1]['ms_per_step']['median']:9.1f} ms/step", file=sys.stderr,
                      flush=True)
                if out is not None:
                    out.write(json.dumps(rows[-1]) + "\n")
                    out.flush()
    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, bf16={args.bf16}, "
          f"{args.rounds} rounds x {args.steps} steps (warm-up {args.warmup}); median [min-max] over rounds")
    print(format_table(rows))
    if args.epoch_pairs:
        for preset in ("baseline", "cbat_v2"):
            print(json.dumps(time_epoch(preset, args.epoch_pairs, batches["paper"], args.device, args.bf16)),
                  flush=True)
    if failed:
        sys.exit(f"bench_model: {len(failed)} preset(s) failed: " + "; ".join(f.splitlines()[0] for f in failed))


if __name__ == "__main__":
    main()
