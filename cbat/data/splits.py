"""Leakage-aware splits: by chromosome (held-out chromosomes never in training), by cell line
(leave-one-cell-line-out), or random pairs (only when asked, with a warning)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from cbat.data.dataset import EPIDataset

SPLITS = ("chrom", "cell_line", "random")


class LeakySplitWarning(UserWarning):
    """A random pair split: shared promoters and enhancers leak labels into the test set."""


@dataclass(frozen=True)
class Split:
    """Integer index arrays into a dataset; ``name`` is filesystem-safe (used in run ids)."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    test_groups: tuple[str, ...] = ()


def split(ds: EPIDataset, by: str = "chrom", test=None, val_fraction: float = 0.1, seed: int = 0,
          test_fraction: float = 0.2) -> Split:
    """Split pairs into train / validation / test. Pairs marked ``meta["scaffold"]`` (the synthetic benchmark's
    easy negatives kept for training and validation) are left out of the test set whatever the split. Pairs
    marked ``meta["held_out"]`` (an independent draw, ``synthetic(held_out_pairs=...)``, or a user's own test
    pairs) only ever join the test set: the other pairs are split as if they were absent, and the held-out ones
    are added to test (for a cell-line split, those of the test cell line).

    Parameters
    ----------
    ds : EPIDataset
    by : {"chrom", "cell_line", "random"}
        ``chrom``: every pair whose chromosome is held out goes to test (validation chromosomes are held out
        the same way). ``cell_line``: one cell line is the test set (default ``NHEK`` when present, else the
        last). ``random``: pairs at random; shared promoters then leak labels, so a warning is raised.
    test : str or list of str, optional
        Test chromosomes or the test cell line. By default chromosomes are drawn with ``seed`` until they
        hold ``test_fraction`` of the pairs.
    val_fraction : float
        Share of the remaining pairs used for validation (whole chromosomes for ``chrom``).
    seed : int
    test_fraction : float
        Target share of test pairs when ``test`` is not given (``chrom`` and ``random``).
    """
    if by not in SPLITS:
        raise ValueError(f"split: by={by!r} is unknown; expected one of {list(SPLITS)}")
    held = flag_column(ds.meta, "held_out")
    if held.all():
        raise ValueError("split: every pair is marked held_out (test only); nothing is left to train on")
    rest = np.flatnonzero(~held)
    cells = ds.meta["cell_line"].astype(str).to_numpy()
    if by == "cell_line" and test is None:  # the default test cell line among all pairs, held-out ones included
        test = "NHEK" if "NHEK" in set(cells) else max(cells)
    parts = _split(ds.meta.iloc[rest].reset_index(drop=True), by, test, val_fraction, seed, test_fraction,
                   held_cells=set(cells[held]))
    parts = replace(parts, train=rest[parts.train], val=rest[parts.val], test=rest[parts.test])
    if held.any():
        joins = held if by != "cell_line" else held & (cells == parts.test_groups[0])
        parts = replace(parts, test=np.union1d(parts.test, np.flatnonzero(joins)))
    scaffold = flag_column(ds.meta, "scaffold")
    return replace(parts, test=parts.test[~scaffold[parts.test]]) if scaffold.any() else parts


# The pair flags a split reads. A file read back holds them as text; a flag missing on some rows (a column only one
# of several files has, an empty cell) is False.
FLAG_COLUMNS = {"scaffold": "pairs kept out of the test set", "held_out": "pairs only ever tested"}
_FLAGS = {"true": True, "1": True, "1.0": True, "false": False, "0": False, "0.0": False, "": False}


def flag_column(meta: pd.DataFrame, column: str) -> np.ndarray:
    """``meta[column]`` (one of ``FLAG_COLUMNS``) as booleans, all False without the column."""
    if column not in meta:
        return np.zeros(len(meta), dtype=bool)
    text = meta[column].astype(object).where(meta[column].notna(), "").astype(str).str.strip().str.lower()
    bad = ~text.isin(list(_FLAGS)).to_numpy()
    if bad.any():
        values = sorted(set(text[bad]))[:5]
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"meta column {column!r} holds {values} (first at pair {first}); expected True/False "
                         f"({FLAG_COLUMNS[column]})")
    return text.map(_FLAGS).to_numpy(dtype=bool)


def _split(meta: pd.DataFrame, by: str, test, val_fraction: float, seed: int, test_fraction: float,
           held_cells: set = frozenset()) -> Split:
    rng = np.random.default_rng(seed)
    everything = np.arange(len(meta))
    if by == "random":
        warnings.warn("split: a random pair split lets shared promoters and enhancers leak labels into the test "
                      "set; use by='chrom' or by='cell_line' for honest numbers", LeakySplitWarning, stacklevel=2)
        order = rng.permutation(everything)
        n_test, n_val = int(round(test_fraction * len(meta))), int(round(val_fraction * len(meta)))
        return Split("random", np.sort(order[n_test + n_val:]), np.sort(order[n_test:n_test + n_val]),
                     np.sort(order[:n_test]))
    if by == "cell_line":
        cells = meta["cell_line"].astype(str).to_numpy()
        held = test  # split() names the default
        if held not in set(cells) | held_cells:  # a test cell line of held-out pairs only tests on those
            raise ValueError(f"split: test cell line {held!r} is not in the data; present: "
                             f"{sorted(set(cells) | held_cells)}")
        rest = everything[cells != held]
        if rest.size == 0:
            raise ValueError(f"split: every pair is in cell line {held!r}; nothing is left to train on")
        val = np.sort(rng.choice(rest, int(round(val_fraction * rest.size)), replace=False))
        return Split(f"cell_line_{held}", np.setdiff1d(rest, val), val, everything[cells == held], (held,))
    chroms = meta["chrom"].astype(str).to_numpy()
    present = sorted(set(chroms))
    if len(present) < 3:
        hint = ("; the pairs name no chromosome: give the data a 'chrom' column (or coordinates), or split by "
                "'cell_line' or 'random'" if set(present) <= {"unknown"} else "")
        raise ValueError(f"split: by='chrom' needs pairs on at least 3 chromosomes; found {present}{hint}")
    if test is None:
        test_chroms = _draw_groups(rng, chroms, present, test_fraction)
    else:
        from cbat.data.loaders import canonical_chrom  # "1" or " chr1" names chr1, as the data spell it

        test_chroms = list(canonical_chrom([test] if isinstance(test, str) else list(test)))
        missing = sorted(set(test_chroms) - set(present))
        if missing:
            raise ValueError(f"split: test chromosome(s) {missing} hold no pairs; present: {present}")
    is_test = np.isin(chroms, test_chroms)
    remaining = [c for c in present if c not in test_chroms]
    val_chroms = _draw_groups(rng, chroms[~is_test], remaining, val_fraction) if val_fraction > 0 else []
    is_val = np.isin(chroms, val_chroms)
    train = everything[~is_test & ~is_val]
    if train.size == 0:
        raise ValueError("split: the held-out chromosomes leave no training pairs")
    return Split("chrom", train, everything[is_val], everything[is_test], tuple(sorted(test_chroms)))


def _draw_groups(rng, groups: np.ndarray, candidates: list[str], fraction: float) -> list[str]:
    """Whole groups in seeded random order until they hold ``fraction`` of the entries (at least one group,
    never all of them)."""
    counts = {g: int((groups == g).sum()) for g in candidates}
    target, taken, chosen = fraction * len(groups), 0, []
    for g in rng.permutation(candidates):
        if taken >= target or len(chosen) == len(candidates) - 1:
            break
        chosen.append(str(g))
        taken += counts[g]
    return chosen
