"""On-disk cache of generated datasets, keyed by their parameters, written atomically."""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cbat.data.dataset import EPIDataset


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$CBAT_CACHE``, else ``~/.cache/cbat-lab``."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("CBAT_CACHE") or Path.home() / ".cache" / "cbat-lab")


def cache_path(root: Path, prefix: str, params: dict) -> Path:
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:20]
    return root / f"{prefix}-{key}.npz"


def _frame_bytes(frame: pd.DataFrame | None) -> np.ndarray:
    if frame is None:
        return np.zeros(0, dtype=np.uint8)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


def save(ds: EPIDataset, path: Path) -> None:
    """Write ``ds`` to ``path`` atomically (``cbat.rundir.atomic_write``: never half-written)."""
    from cbat.rundir import atomic_write

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:  # a file object, or numpy appends ".npz" to the temporary name
            np.savez(handle, enhancer=ds.enhancer, promoter=ds.promoter, labels=ds.labels,
                     meta=_frame_bytes(ds.meta), truth=_frame_bytes(ds.truth))

    atomic_write(path, write)


def load(path: Path) -> EPIDataset | None:
    """The cached dataset, or None when absent or unreadable (it is then regenerated)."""
    try:
        with np.load(path) as data:
            truth = data["truth"]
            return EPIDataset(data["enhancer"], data["promoter"], data["labels"],
                              pd.read_parquet(io.BytesIO(data["meta"].tobytes())),
                              pd.read_parquet(io.BytesIO(truth.tobytes())) if truth.size else None)
    except (OSError, ValueError, KeyError):
        return None
