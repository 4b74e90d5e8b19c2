"""Cost and quality of loop attribution at the defaults (converged IG, JASPAR 2024 families, ISM check).

1. Seconds per loop of Integrated Gradients (from 50 steps, doubled per loop until |delta| <= 0.05, up to 800;
   10 dinucleotide-shuffled references, both inputs) on the baseline preset at the CPU default lengths
   (600/400 bp) and at paper scale (3000/2000 bp), each in a fresh process so the peak memory (max RSS; CUDA
   peak when on a GPU) belongs to that setting alone; the steps reached are printed beside.
2. Recovery on a model trained **from scratch** (``--seeded`` starts the stems from the planted PWMs instead),
   scored on its top predicted loops: position ROC-AUC per side, fraction of causal motifs whose JASPAR family
   is matched (exact ids beside), loops not converged at the defaults, IG-ISM and saliency-ISM Pearson per side
   and the loop sides flagged (IG disagrees where saliency agrees), per planted cause when the task records one
   (``meta["cause"]`` of ``mixture``). ``--references uniform`` repeats the IG-ISM check against a uniform
   reference, to tell a reference effect from a model effect when IG and ISM disagree.

    python benchmarks/bench_attribution.py                       # both parts, CPU
    python benchmarks/bench_attribution.py --part recovery --tasks mixture --n-pairs 3000 --epochs 10
    python benchmarks/bench_attribution.py --part cost --device cuda
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SIZES = {"cpu_default": (600, 400), "paper": (3000, 2000)}


def cost_one(size: str, device: str, n_loops: int, n_steps: int, n_shuffles: int, internal_batch_size: int) -> dict:
    import numpy as np
    import torch

    import cbat
    from diagnostics.attribution import codes_to_onehot, integrated_gradients

    enhancer_len, promoter_len = SIZES[size]
    rng = np.random.default_rng(0)
    enhancer = torch.from_numpy(codes_to_onehot(rng.integers(0, 4, (n_loops, enhancer_len)).astype(np.uint8)))
    promoter = torch.from_numpy(codes_to_onehot(rng.integers(0, 4, (n_loops, promoter_len)).astype(np.uint8)))
    model = cbat.build_model(cbat.preset("baseline"), seed=0).to(device)
    integrated_gradients(model, enhancer[:1], promoter[:1], 2, 2, internal_batch_size, progress=False,
                         delta_threshold=None)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = integrated_gradients(model, enhancer, promoter, n_shuffles, n_steps, internal_batch_size,
                                  batch_loops=1, progress=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / n_loops
    out = {"size": size, "lengths": f"{enhancer_len}/{promoter_len}", "device": device, "n_steps": n_steps,
           "n_shuffles": n_shuffles, "internal_batch_size": internal_batch_size, "seconds_per_loop": seconds,
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "max_abs_delta": float(np.abs(result.delta).max()), "steps": result.steps.tolist(),
           "torch_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        out["gpu"] = torch.cuda.get_device_name()
    return out


def recovery(task: str, n_pairs: int, epochs: int, top: int, n_steps: int, n_shuffles: int, device: str,
             seeded: bool, d_model: int, references: str) -> dict:
    import dataclasses

    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    import cbat
    import cbat.data
    from diagnostics import attribution, motifs
    from diagnostics import recovery as rec

    start = time.perf_counter()
    ds = cbat.data.synthetic(task, n_pairs=n_pairs, seed=0)  # CPU default lengths 600/400, all cell lines
    cut = int(0.8 * n_pairs)
    train, test = np.arange(cut), np.arange(cut, n_pairs)
    cfg = dataclasses.replace(cbat.preset("baseline"), d_model=d_model)
    model = rec.train_probe_model(ds, train, cfg, epochs=epochs, seed=0, seed_motifs=seeded).to(device)
    trained = time.perf_counter()
    logits = attribution.predict(model, *ds.onehot(test))
    predictions = pd.DataFrame({"pair_index": test, "cell_line": ds.meta["cell_line"].to_numpy()[test],
                                "label": ds.labels[test], "logit": logits, "prob": 1 / (1 + np.exp(-logits))})
    loops = attribution.select_loops(predictions, top=top)
    out = {"task": task, "n_pairs": n_pairs, "epochs": epochs, "d_model": d_model, "seeded": seeded,
           "test_auroc": roc_auc_score(ds.labels[test], logits), "loops": len(loops),
           "true_positive_loops": int((loops["outcome"] == "TP").sum())}
    report = attribution.explain_loops(model, ds, loops, motifs.MotifDB.from_jaspar(), n_shuffles=n_shuffles,
                                       n_steps=n_steps, progress=False)
    out["seconds_per_loop"] = (time.perf_counter() - trained) / len(loops)
    out.update(report.recovery)
    out["flagged_fraction"] = float(report.loops["flagged"].mean())
    out["steps_max"] = int(report.loops["steps"].max())
    for side, part in report.trust.groupby("side"):
        out[f"{side}_ig_ism_r"] = float(part["ig_ism_r"].median())
        out[f"{side}_saliency_ism_r"] = float(part["saliency_ism_r"].median())
        out[f"{side}_ism_flagged"] = int(part["ism_flag"].sum())
    if references != "shuffle":  # the same loops, IG against another reference, checked against the same ISM
        index = report.loops["pair_index"].to_numpy()
        enhancer, promoter = ds.onehot(index)
        other = attribution.integrated_gradients(model, enhancer, promoter, n_shuffles, n_steps, progress=False,
                                                 references=references)
        where = attribution.ism_positions(report.seqlets, index, {"enhancer": enhancer.shape[2],
                                                                  "promoter": promoter.shape[2]})
        ism = attribution.in_silico_mutagenesis(model, enhancer, promoter, where)
        for side, part in attribution.ism_agreement(other, ism, index).groupby("side"):
            out[f"{side}_ig_{references}_ism_r"] = float(part["pearson"].median())
    out["groups"] = report.recovery_groups.round(3).to_dict("records")
    out["seconds"] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["cost", "recovery", "all"], default="all")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--loops", type=int, default=2, help="loops timed per size")
    parser.add_argument("--n-steps", type=int, default=50)
    parser.add_argument("--n-shuffles", type=int, default=10)
    parser.add_argument("--batch", default="cpu_default:100,paper:25",
                        help="internal_batch_size per size (bounds memory)")
    parser.add_argument("--tasks", default="sparse_strong,grammar")
    parser.add_argument("--n-pairs", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--top", type=int, default=5, help="loops per cell line scored for recovery")
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--seeded", action="store_true", help="start the stems from the planted PWMs")
    parser.add_argument("--references", choices=["shuffle", "uniform"], default="shuffle",
                        help="also check IG against this reference (uniform: every base 0.25)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one cost setting in this process
    args = parser.parse_args()
    batches = dict((k, int(v)) for k, v in (item.split(":") for item in args.batch.split(",")))
    if args.one:
        print(json.dumps(cost_one(args.one, args.device, args.loops, args.n_steps, args.n_shuffles, batches[args.one])))
        return
    if args.part in ("cost", "all"):
        for size in SIZES:
            command = [sys.executable, __file__, "--one", size, "--device", args.device, "--loops", str(args.loops),
                       "--n-steps", str(args.n_steps), "--n-shuffles", str(args.n_shuffles), "--batch", args.batch]
            line = subprocess.run(command, check=True, capture_output=True, text=True,
                                  timeout=3600).stdout.strip().splitlines()[-1]
            row = json.loads(line)
            print(f"IG cost {row['lengths']} bp on {row['device']}: {row['seconds_per_loop']:.2f} s/loop "
                  f"(from {row['n_steps']} steps, reached {row['steps']}, x {row['n_shuffles']} shuffles, "
                  f"internal_batch_size "
                  f"{row['internal_batch_size']}), peak RSS {row['peak_rss_mib']:.0f} MiB"
                  + (f", CUDA peak {row['cuda_peak_mib']:.0f} MiB ({row['gpu']})" if "cuda_peak_mib" in row else "")
                  + f"  {json.dumps(row)}", flush=True)
    if args.part in ("recovery", "all"):
        for task in args.tasks.split(","):
            row = recovery(task, args.n_pairs, args.epochs, args.top, args.n_steps, args.n_shuffles, args.device,
                           args.seeded, args.d_model, args.references)
            print(f"recovery {task}: " + json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                                     for k, v in row.items()}, default=str), flush=True)


if __name__ == "__main__":
    main()
