"""Cost and quality of loop attribution.

1. Seconds per loop of Integrated Gradients (50 steps x 10 dinucleotide-shuffled references, both inputs) on
   the baseline preset at the CPU default lengths (600/400 bp) and at paper scale (3000/2000 bp), each in a fresh
   process so the peak memory (max RSS; CUDA peak when on a GPU) belongs to that setting alone.
2. Planted-motif recovery of a model trained on ``sparse_strong`` and ``grammar`` (stems seeded with the planted
   PWMs, see ``diagnostics.recovery.train_probe_model``), scored on its top predicted loops.

    python benchmarks/bench_attribution.py                       # both parts, CPU
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
    integrated_gradients(model, enhancer[:1], promoter[:1], 2, 2, internal_batch_size, progress=False)  # warm-up
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
           "max_abs_delta": float(np.abs(result.delta).max()), "torch_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        out["gpu"] = torch.cuda.get_device_name()
    return out


def recovery(task: str, n_pairs: int, epochs: int, top: int, n_steps: int, n_shuffles: int, device: str) -> dict:
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    import cbat.data
    from cbat.data.motifs import JASPAR_RELEASE
    from diagnostics import attribution, motifs
    from diagnostics import recovery as rec

    start = time.perf_counter()
    ds = cbat.data.synthetic(task, n_pairs=n_pairs, seed=0)  # CPU default lengths 600/400, all cell lines
    cut = int(0.8 * n_pairs)
    train, test = np.arange(cut), np.arange(cut, n_pairs)
    model = rec.train_probe_model(ds, train, epochs=epochs, seed=0).to(device)
    logits = attribution.predict(model, *ds.onehot(test))
    predictions = pd.DataFrame({"pair_index": test, "cell_line": ds.meta["cell_line"].to_numpy()[test],
                                "label": ds.labels[test], "logit": logits, "prob": 1 / (1 + np.exp(-logits))})
    loops = attribution.select_loops(predictions, top=top)
    out = {"task": task, "n_pairs": n_pairs, "epochs": epochs, "test_auroc": roc_auc_score(ds.labels[test], logits),
           "loops": len(loops), "true_positive_loops": int((loops["outcome"] == "TP").sum())}
    vocabulary = motifs.MotifDB.from_jaspar(ids=tuple(sorted(set(ds.truth["motif_id"]))), release=JASPAR_RELEASE)
    report = attribution.explain_loops(model, ds, loops, vocabulary, n_shuffles=n_shuffles, n_steps=n_steps,
                                       n_ism=0, progress=False)
    out.update({f"vocab_{k}": v for k, v in report.recovery.items()})
    out["flagged_fraction"] = float(report.loops["flagged"].mean())
    # the same seqlets against every JASPAR CORE vertebrate matrix of that release
    full = motifs.MotifDB.from_jaspar(release=JASPAR_RELEASE)
    index = report.loops["pair_index"].to_numpy()
    seqlets = motifs.annotate_seqlets(report.scores(), {"enhancer": ds.enhancer[index], "promoter": ds.promoter[index]},
                                      report.loops, full)
    out["full_jaspar_motifs"] = len(full)
    out["full_jaspar_motif_id_fraction"] = rec.recovery_scores(report.scores(), ds.truth, index,
                                                               seqlets)["motif_id_fraction"]
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
            line = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            row = json.loads(line)
            print(f"IG cost {row['lengths']} bp on {row['device']}: {row['seconds_per_loop']:.2f} s/loop "
                  f"({row['n_steps']} steps x {row['n_shuffles']} shuffles, internal_batch_size "
                  f"{row['internal_batch_size']}), peak RSS {row['peak_rss_mib']:.0f} MiB"
                  + (f", CUDA peak {row['cuda_peak_mib']:.0f} MiB ({row['gpu']})" if "cuda_peak_mib" in row else "")
                  + f"  {json.dumps(row)}", flush=True)
    if args.part in ("recovery", "all"):
        for task in args.tasks.split(","):
            row = recovery(task, args.n_pairs, args.epochs, args.top, args.n_steps, args.n_shuffles, args.device)
            print(f"recovery {task}: " + json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                                     for k, v in row.items()}), flush=True)


if __name__ == "__main__":
    main()
