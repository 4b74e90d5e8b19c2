"""Hand-made sweep directories for the diagnostics tests (the sweep contract, no training), and the
reader's behaviour on them."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import pytest

import cbat
from cbat import rundir
from cbat.hooks import Trace, trace_site
from cbat.metrics import evaluate, learnt
from diagnostics.io import SweepError, load_sweep

N_PAIRS = 240
# What the recorder writes as ``kind`` for each hook-name ending (fakes have no HookPoint to ask).
FAKE_KINDS = ((".pattern", "attn"), (".value", "gate"), (".state", "anchors"), (".grad_norm", "grad"))


def trace_frame(rows) -> pd.DataFrame:
    """A summary trace from (name, block, statistic, head, step, value) rows, with ``kind`` and ``site``
    filled in as ``cbat.hooks.Trace`` does."""
    frame = pd.DataFrame(rows, columns=["name", "block", "statistic", "head", "step", "value"])
    kinds = [next((k for end, k in FAKE_KINDS if n.endswith(end)), "loss") for n in frame["name"]]
    frame.insert(2, "kind", kinds)
    frame.insert(3, "site", [trace_site(n, k) for n, k in zip(frame["name"], kinds)])
    return frame[Trace.COLUMNS]


def labels_and_signal(seed: int = 123) -> tuple[np.ndarray, np.ndarray]:
    """Test labels and a latent score that separates them well (shared by every fake run)."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(N_PAIRS) % 2).astype(int)
    return labels, labels * 2.0 + rng.normal(0, 1, N_PAIRS)


def probs_with_noise(noise: float, shift: float = 0.0) -> Callable[[str, int], np.ndarray]:
    """Prediction maker: the shared signal plus ``noise`` x per-seed noise (more noise = worse ranking)."""
    labels, signal = labels_and_signal()

    def make(variant: str, seed: int) -> np.ndarray:
        rng = np.random.default_rng(1000 + seed)
        logit = signal - 1.0 + noise * rng.normal(0, 1, N_PAIRS) + shift
        return 1 / (1 + np.exp(-logit))
    return make


def loss_trace(shares: dict[str, float], cosine: dict[str, float], steps: int = 6) -> pd.DataFrame:
    """A trace holding loss components with given weighted values and gradient cosines."""
    rows = []
    for step in range(steps):
        for name, weighted in shares.items():
            rows.append((f"loss.{name}", -1, "weighted", -1, step, weighted))
            rows.append((f"loss.{name}", -1, "value", -1, step, weighted))
            if name in cosine:
                rows.append((f"loss.{name}", -1, "grad_cosine", -1, step, cosine[name]))
        rows.append(("loss.total", -1, "weighted", -1, step, sum(shares.values())))
    return trace_frame(rows)


def gate_trace(saturated: float, steps: int = 8, blocks: int = 2, early_var: float = 0.01) -> pd.DataFrame:
    """Gate rows whose fraction saturated ramps from 0 to ``saturated``; per-sample variance ``early_var`` in
    the first two steps, 0.001 later."""
    rows = []
    for step in range(steps):
        for block in range(blocks):
            name = f"blocks.{block}.gate_attn.value"
            frac = saturated * step / (steps - 1)
            for stat, value in (("mean", 0.5), ("std", 0.1), ("frac_saturated", frac), ("frac_low", frac / 2),
                                ("frac_high", frac / 2), ("sample_var", early_var if step < 2 else 0.001)):
                rows.append((name, block, stat, -1, step, value))
            for b in range(10):
                rows.append((name, block, f"hist_{b:02d}", -1, step, 0.1))
    return trace_frame(rows)


def write_sweep(path: Path, variants: dict[str, cbat.CBATConfig], seeds: list[int],
                probs: Callable[[str, int], np.ndarray], trace: Optional[Callable[[str, int], pd.DataFrame]] = None,
                task: str = "diffuse", split: str = "chrom", causes: Optional[np.ndarray] = None,
                settings: Optional[dict[str, dict]] = None) -> Path:
    """Write a sweep directory by the contract: sweep.json, records, predictions, traces (``causes``: the planted
    cause of each test pair, for per-cause metrics; ``settings``: training settings per variant, default none)."""
    labels, _ = labels_and_signal()
    path.mkdir(parents=True, exist_ok=True)
    (path / "sweep.json").write_text(json.dumps({"spec": {"data": None}, "variants": {}}))
    for variant, cfg in variants.items():
        for seed in seeds:
            run_id = f"{variant}__s{seed}__{split}"
            run_dir = path / "runs" / run_id
            run_dir.mkdir(parents=True, exist_ok=True)
            p = probs(variant, seed)
            predictions = pd.DataFrame({"pair_index": np.arange(N_PAIRS), "cell_line": "GM12878", "label": labels,
                                        "logit": np.log(p / (1 - p)), "prob": p})
            if causes is not None:
                predictions["cause"] = causes
            predictions.to_parquet(run_dir / "predictions.parquet")
            frame = trace(variant, seed) if trace else trace_frame([])
            frame.to_parquet(run_dir / "trace.parquet")
            record = {"run_id": run_id, "variant": variant, "seed": seed, "split": split, "task": task,
                      "status": "ok", "error": None, "config": dataclasses.replace(cfg, name=variant).to_dict(),
                      "settings": (settings or {}).get(variant, {}),
                      "metrics": {"test": evaluate(labels, p, causes=causes)}, "learnt": learnt(labels, p),
                      "paths": {"trace": "trace.parquet", "predictions": "predictions.parquet", "model": "model.pt"}}
            rundir.write_record(run_dir / "record.json", record)
    return path


def test_reader_builds_one_row_per_run_with_metrics(tmp_path):
    base = cbat.preset("baseline")
    sweep = load_sweep(write_sweep(tmp_path / "s", {"baseline": base, "noisy": base}, [0, 1],
                                   probs_with_noise(0.5), lambda v, s: gate_trace(0.3)))
    assert len(sweep.runs) == 4 and set(sweep.runs["variant"]) == {"baseline", "noisy"}
    assert sweep.runs["aupr"].between(0.5, 1).all()
    stacked = sweep.traces(sweep.ok("noisy")["run_id"])
    assert list(stacked.columns[:3]) == ["run_id", "variant", "seed"] and set(stacked["seed"]) == {0, 1}
    assert sweep.file("baseline__s0__chrom", "checkpoint") is None  # named in the record, absent on disk


def test_reader_names_the_bad_record_and_field(tmp_path):
    path = write_sweep(tmp_path / "s", {"baseline": cbat.preset("baseline")}, [0], probs_with_noise(0.5))
    record_path = path / "runs" / "baseline__s0__chrom" / "record.json"
    record = json.loads(record_path.read_text())
    del record["variant"]
    record_path.write_text(json.dumps(record))
    with pytest.raises(SweepError, match=r"record\.json: record lacks field\(s\) \['variant'\]"):
        load_sweep(path)
    record_path.write_text("{not json")
    with pytest.raises(SweepError, match="record.json: truncated or corrupt JSON"):
        load_sweep(path)
    with pytest.raises(SweepError, match="sweep directory not found"):
        load_sweep(tmp_path / "missing")
