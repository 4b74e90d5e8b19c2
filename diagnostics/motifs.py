"""From per-base attributions to motifs: smoothing, seqlets, JASPAR matches, per-cell-line tables.

A seqlet is a high-attribution window (as in TF-MoDISco): the per-base attribution is smoothed with a moving
average, windows are taken greedily around the highest peaks above a robust threshold, and each window's score is
the summed attribution inside it (its contribution to the logit). Each seqlet is matched to JASPAR motifs
(``pyjaspar``, bundled database, offline) by a PWM scan of the observed bases around it: log-odds scores against a
uniform background, turned into exact p-values by the score distribution of each matrix (the FIMO recipe) and
corrected for the number of positions and strands scanned. The best and runner-up motifs go into a tidy table.

JASPAR holds near-identical matrices under different names (ZNF143 and ZNF76, the ETS factors, ...), so a match
names its **family**: every matrix of the database whose similarity to the match is at least
``FAMILY_SIMILARITY``. The similarity of two matrices is the best, over aligned offsets and both strands, of the
summed Pearson correlation of overlapping frequency columns divided by the shorter width (1 when the shorter
matrix fits the longer exactly; the column-correlation score of Pietrokovski 1996 and Tomtom's PCC). JASPAR's own
clusters are not in the database ``pyjaspar`` bundles, hence this score. The database release is pinned to the
benchmark's (:data:`cbat.data.motifs.JASPAR_RELEASE`) unless a caller names another.
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import uniform_filter1d

from cbat.data.encoding import ONEHOT_TABLE

SEQLET_COLUMNS = ["loop", "cell_line", "side", "seqlet", "start", "end", "score", "strand", "motif_id",
                  "motif_name", "match_score", "match_pvalue", "matched", "family", "family_ids", "family_similarity",
                  "match_label", "runner_up_id", "runner_up_name", "runner_up_pvalue"]
FAMILY_SIMILARITY = 0.9  # ZNF143 MA0088.2 vs ZNF76 MA1716.2: 0.92, vs ZNF143 MA0088.3: 0.78; CTCF vs Spi1: 0.30
FAMILY_NAMES_SHOWN = 5  # names written into a match label; the ids column keeps them all
SCORE_RESOLUTION = 0.1  # bits per bin of the exact score distribution


# --- JASPAR ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MotifDB:
    """Position weight matrices of a set of JASPAR motifs, ready to scan.

    Attributes
    ----------
    ids, names : tuple of str
        JASPAR matrix ids (e.g. ``MA0139.2``) and names (``CTCF``).
    log_odds : tuple of ndarray, each shape (4, width)
        log2(p / 0.25) per base (rows ACGT) after mixing 5% of a uniform distribution into the frequencies.
    """

    ids: tuple[str, ...]
    names: tuple[str, ...]
    log_odds: tuple[np.ndarray, ...]

    @classmethod
    def from_counts(cls, ids, names, counts, uniform_mix: float = 0.05) -> "MotifDB":
        """Build from count (or frequency) matrices ``[4, width]`` with rows A, C, G, T."""
        log_odds = []
        for motif_id, matrix in zip(ids, counts):
            matrix = np.asarray(matrix, dtype=float)
            if matrix.ndim != 2 or matrix.shape[0] != 4 or (matrix.sum(0) <= 0).any():
                raise ValueError(f"motif {motif_id}: expected non-negative counts [4, width] with non-empty columns")
            freq = matrix / matrix.sum(0, keepdims=True)
            log_odds.append(np.log2(((1 - uniform_mix) * freq + uniform_mix * 0.25) / 0.25))
        return cls(tuple(ids), tuple(names), tuple(log_odds))

    @classmethod
    def from_jaspar(cls, ids: tuple[str, ...] | None = None, collection: str = "CORE",
                    tax_group: str = "vertebrates", release: str | None = None) -> "MotifDB":
        """Motifs from the JASPAR database bundled with ``pyjaspar`` (no network).

        Parameters
        ----------
        ids : tuple of str, optional
            Exact matrix ids; without them, the latest version of every motif in ``collection`` / ``tax_group``.
        release : str, optional
            A JASPAR release such as ``"JASPAR2024"``; default the benchmark's pinned
            :data:`cbat.data.motifs.JASPAR_RELEASE` (not the newest bundled, so names do not move with pyjaspar).
        """
        from cbat.data.motifs import JASPAR_RELEASE

        release = release or JASPAR_RELEASE
        motifs = _fetch_jaspar(tuple(ids) if ids is not None else None, collection, tax_group, release)
        return cls.from_counts([m.matrix_id for m in motifs], [m.name for m in motifs],
                               [[m.counts[b] for b in "ACGT"] for m in motifs])

    def subset(self, ids) -> "MotifDB":
        """The motifs with these ids, in this database's order."""
        wanted = set(ids)
        keep = [i for i, motif_id in enumerate(self.ids) if motif_id in wanted]
        return MotifDB(tuple(self.ids[i] for i in keep), tuple(self.names[i] for i in keep),
                       tuple(self.log_odds[i] for i in keep))

    def __len__(self) -> int:
        return len(self.ids)

    def probs(self, motif: int) -> np.ndarray:
        """Frequencies ``[4, width]`` of motif number ``motif`` (the uniform mix of :meth:`from_counts` included;
        it changes no column correlation)."""
        return 0.25 * np.exp2(self.log_odds[motif])

    @functools.cached_property
    def _standardised(self) -> tuple[np.ndarray, ...]:
        return tuple(standardise_columns(self.probs(i)) for i in range(len(self)))

    def similarity_to(self, matrix: np.ndarray) -> np.ndarray:
        """:func:`matrix_similarity` of a frequency matrix ``[4, width]`` to every motif of the database."""
        query = standardise_columns(np.asarray(matrix, dtype=float))
        return np.array([_aligned_similarity(query, other) for other in self._standardised])

    @functools.cached_property
    def _families(self) -> dict:
        return {}

    def family(self, motif: int, threshold: float = FAMILY_SIMILARITY) -> tuple[tuple[int, ...], np.ndarray]:
        """Motif number ``motif`` and every motif at least ``threshold`` similar to it, most similar first.

        Returns
        -------
        (tuple of int, ndarray)
            Member indices (``motif`` first) and their similarity to ``motif``.
        """
        key = (motif, threshold)
        if key not in self._families:
            similarity = self.similarity_to(self.probs(motif))
            similarity[motif] = np.inf  # the match itself leads its family
            members = np.flatnonzero(similarity >= threshold)
            members = members[np.argsort(-similarity[members], kind="stable")]
            self._families[key] = (tuple(int(m) for m in members),
                                   np.where(members == motif, 1.0, similarity[members]))
        return self._families[key]

    def family_label(self, motif: int, threshold: float = FAMILY_SIMILARITY) -> dict:
        """The family of a match as table fields: ``family`` (names), ``family_ids``, ``family_similarity`` (of
        the closest other member; NaN alone) and ``match_label``, e.g.
        ``"ZNF76 (family: ZNF143, ZNF76; similarity 0.98)"``."""
        members, similarity = self.family(motif, threshold)
        names = list(dict.fromkeys(self.names[m] for m in members))
        shown = ", ".join(sorted(names[:FAMILY_NAMES_SHOWN], key=str.upper))
        if len(names) > FAMILY_NAMES_SHOWN:
            shown += f", +{len(names) - FAMILY_NAMES_SHOWN} more"
        closest = float(similarity[1]) if len(members) > 1 else np.nan
        label = self.names[motif] if len(members) == 1 else (
            f"{self.names[motif]} (family: {shown}; similarity {closest:.2f})")
        return {"family": shown, "family_ids": ";".join(self.ids[m] for m in members),
                "family_similarity": closest, "match_label": label}

    @functools.cached_property
    def _by_width(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        groups: dict[int, list[int]] = {}
        for i, matrix in enumerate(self.log_odds):
            groups.setdefault(matrix.shape[1], []).append(i)
        return {w: (np.array(idx), np.stack([self.log_odds[i] for i in idx])) for w, idx in groups.items()}

    @functools.cached_property
    def _null_tail(self) -> tuple[tuple[float, np.ndarray], ...]:
        """Per motif: (lowest score, P(score >= bin) for each bin) under a uniform i.i.d. background."""
        tails = []
        for matrix in self.log_odds:
            bins = np.round(matrix / SCORE_RESOLUTION).astype(int)
            low = bins.min(0)
            pmf = np.ones(1)
            for column, column_low in zip(bins.T, low):
                step = np.zeros(column.max() - column_low + 1)
                np.add.at(step, column - column_low, 0.25)
                pmf = np.convolve(pmf, step)
            tails.append((low.sum() * SCORE_RESOLUTION, np.cumsum(pmf[::-1])[::-1]))
        return tuple(tails)

    def pvalue(self, motif: int, score: float) -> float:
        """P(a random uniform sequence scores >= ``score``) for motif number ``motif`` (one position, one strand)."""
        low, tail = self._null_tail[motif]
        # Scores are compared with rounded bins, so the maximal score may land one bin past the end: clip.
        index = int(np.ceil((score - low) / SCORE_RESOLUTION - 1e-9))
        return float(tail[min(max(index, 0), len(tail) - 1)])

    def scan(self, codes: np.ndarray) -> pd.DataFrame:
        """Best hit of every motif in a sequence of codes (:mod:`cbat.data.encoding`), both strands.

        Returns
        -------
        DataFrame
            One row per motif that fits: ``motif`` (index), ``motif_id``, ``motif_name``, ``score`` (log-odds
            bits), ``offset`` (start of the hit in ``codes``), ``strand`` (+/-), ``pvalue`` (the best of all
            positions and both strands, corrected for that number of tests).
        """
        codes = np.asarray(codes)
        onehot = ONEHOT_TABLE[codes].T.astype(float)  # [4, L]; N and IUPAC codes score the mean of their bases
        rows = []
        for width, (index, matrices) in self._by_width.items():
            if width > onehot.shape[1]:
                continue
            windows = np.lib.stride_tricks.sliding_window_view(onehot, width, axis=1)  # [4, n, w]
            forward = np.einsum("maw,anw->mn", matrices, windows)
            reverse = np.einsum("maw,anw->mn", matrices[:, ::-1, ::-1], windows)  # reverse complement
            both = np.concatenate([forward, reverse], axis=1)
            best = both.argmax(1)
            n_positions = windows.shape[1]
            for row, (motif, column) in enumerate(zip(index, best)):
                score = float(both[row, column])
                p_one = self.pvalue(motif, score)
                rows.append({"motif": int(motif), "motif_id": self.ids[motif], "motif_name": self.names[motif],
                             "score": score, "offset": int(column % n_positions),
                             "strand": "+" if column < n_positions else "-",
                             "pvalue": float(-np.expm1(2 * n_positions * np.log1p(-min(p_one, 1 - 1e-16))))})
        return pd.DataFrame(rows)


def standardise_columns(matrix: np.ndarray) -> np.ndarray:
    """Each column of a ``[4, width]`` matrix centred and scaled to unit norm (a constant column becomes 0), so
    the dot product of two columns is their Pearson correlation."""
    centred = matrix - matrix.mean(0, keepdims=True)
    norm = np.sqrt((centred ** 2).sum(0, keepdims=True))
    return np.divide(centred, norm, out=np.zeros_like(centred), where=norm > 1e-12)


def _aligned_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Best summed column correlation over offsets and both strands, over the shorter width (standardised input)."""
    best = -np.inf
    for other in (b, b[::-1, ::-1]):  # reverse complement: rows ACGT reversed is TGCA, columns reversed
        correlation = a.T @ other  # [wa, wb], entry (i, j) = corr(column i of a, column j of b)
        sums = [np.trace(correlation, offset=k) for k in range(-a.shape[1] + 1, other.shape[1])]
        best = max(best, max(sums))
    return float(best / min(a.shape[1], b.shape[1]))


def matrix_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Similarity of two frequency matrices ``[4, width]`` (rows ACGT): the summed Pearson correlation of aligned
    columns, at the best offset and strand, divided by the shorter width. 1 for identical matrices."""
    return _aligned_similarity(standardise_columns(np.asarray(a, dtype=float)),
                               standardise_columns(np.asarray(b, dtype=float)))


@functools.lru_cache(maxsize=8)
def _fetch_jaspar(ids, collection, tax_group, release):
    import warnings

    from pyjaspar import jaspardb
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyjaspar warns on every empty selection
        newest = jaspardb()
        releases = newest.get_releases()
        if release and release not in releases:  # pyjaspar would fail later with an AttributeError
            raise ValueError(f"JASPAR release {release!r} is not bundled with pyjaspar; expected one of "
                             f"{', '.join(releases)}")
        db = jaspardb(release=release) if release else newest
        if ids is None:
            motifs = db.fetch_motifs(collection=collection, tax_group=[tax_group])
        else:
            motifs = []
            for motif_id in ids:
                motif = db.fetch_motif_by_id(motif_id)
                if motif is None:
                    raise ValueError(f"JASPAR id {motif_id!r} is not in the bundled database ({db.release})")
                motifs.append(motif)
    if not motifs:
        raise ValueError(f"no JASPAR motifs for collection={collection!r}, tax_group={tax_group!r}")
    return tuple(motifs)


# --- seqlets -----------------------------------------------------------------------------------

# Seqlets per sequence at most. At 5 the cap, not the threshold, set the count on every side of the quick report's
# loops (a diffuse promoter carries a six-site cluster and a two-site decoy pair); at 10 the threshold decides
# (7.9 per side on those loops, 8.2 with no cap at all).
MAX_SEQLETS = 10


def smooth(scores: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of per-base scores (zero beyond the ends)."""
    return uniform_filter1d(np.asarray(scores, dtype=float), size=width, mode="constant")


def call_seqlets(scores: np.ndarray, width: int = 15, z: float = 3.0, max_seqlets: int = MAX_SEQLETS) -> pd.DataFrame:
    """High-attribution windows of one sequence's per-base scores.

    Windows of ``width`` bases are taken greedily around the highest peaks of |smoothed scores| (as in
    TF-MoDISco, a site can push the logit either way); a peak counts when it is above
    ``median + z * 1.4826 * MAD`` of that track (a robust z-score within the sequence). Neighbours of a taken
    window are suppressed so seqlets do not overlap. ``max_seqlets`` only bounds the work per sequence: the
    threshold should decide how many sites a sequence has.

    Returns
    -------
    DataFrame
        ``start``, ``end`` (half-open, in bases) and ``score`` (summed signed attribution), strongest first.
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 1:
        raise ValueError(f"call_seqlets: expected one track of per-base scores [L], got shape {scores.shape}")
    width = min(width, len(scores))
    track = np.abs(smooth(scores, width))
    mad = np.median(np.abs(track - np.median(track)))
    threshold = np.median(track) + z * 1.4826 * mad
    rows = []
    while len(rows) < max_seqlets:
        peak = int(np.argmax(track))
        if not track[peak] > threshold:
            break
        start = min(max(peak - width // 2, 0), len(scores) - width)
        rows.append({"start": start, "end": start + width, "score": float(scores[start:start + width].sum())})
        track[max(start - width // 2, 0):start + width + width // 2] = -np.inf
    return pd.DataFrame(rows, columns=["start", "end", "score"])


def annotate_seqlets(scores: dict[str, np.ndarray], codes: dict[str, np.ndarray], loops: pd.DataFrame,
                     db: MotifDB, width: int = 15, z: float = 3.0, max_seqlets: int = MAX_SEQLETS, flank: int = 10,
                     alpha: float = 0.05, family_threshold: float = FAMILY_SIMILARITY) -> pd.DataFrame:
    """Seqlets of every loop and side, each with its best and runner-up JASPAR match: the tidy motif table.

    Parameters
    ----------
    scores : dict
        ``{"enhancer": [n, Le], "promoter": [n, Lp]}`` per-base attributions (row i = loop i of ``loops``).
    codes : dict
        The same sides as base codes (:mod:`cbat.data.encoding`), used for the PWM scan.
    loops : DataFrame
        One row per loop with ``pair_index`` (and ``cell_line``), in the order of the arrays.
    db : MotifDB
        The motifs to match against.
    flank : int
        Bases scanned on each side of a seqlet, so motifs longer than the window still fit.
    alpha : float
        A match counts (``matched``) when its p-value, Bonferroni-corrected for the motifs in ``db``, is at most
        ``alpha`` (``match_pvalue`` is already corrected for the positions and strands scanned).
    family_threshold : float
        Matrices at least this similar to the best match form its family (:meth:`MotifDB.family_label`).

    Returns
    -------
    DataFrame with columns ``SEQLET_COLUMNS``; ``start``/``end`` in bases of that side's sequence.
    """
    if len(db) == 0:
        raise ValueError("annotate_seqlets: the motif database is empty")
    rows = []
    cell_lines = loops["cell_line"] if "cell_line" in loops else pd.Series(["all"] * len(loops))
    for i, (pair_index, cell_line) in enumerate(zip(loops["pair_index"], cell_lines)):
        for side in ("enhancer", "promoter"):
            seqlets = call_seqlets(scores[side][i], width, z, max_seqlets)
            for rank, seqlet in enumerate(seqlets.itertuples(), start=1):
                lo, hi = max(seqlet.start - flank, 0), min(seqlet.end + flank, len(codes[side][i]))
                hits = db.scan(codes[side][i][lo:hi]).sort_values(["pvalue", "score"], ascending=[True, False])
                best = hits.iloc[0] if len(hits) else None
                runner = hits.iloc[1] if len(hits) > 1 else None
                family = db.family_label(int(best.motif), family_threshold) if best is not None else {
                    "family": None, "family_ids": None, "family_similarity": np.nan, "match_label": None}
                rows.append({"loop": int(pair_index), "cell_line": cell_line, "side": side, "seqlet": rank,
                             "start": int(seqlet.start), "end": int(seqlet.end), "score": seqlet.score,
                             "strand": best.strand if best is not None else None,
                             "motif_id": best.motif_id if best is not None else None,
                             "motif_name": best.motif_name if best is not None else None,
                             "match_score": best.score if best is not None else np.nan,
                             "match_pvalue": best.pvalue if best is not None else np.nan,
                             "matched": bool(best is not None and best.pvalue * len(db) <= alpha),
                             **family,
                             "runner_up_id": runner.motif_id if runner is not None else None,
                             "runner_up_name": runner.motif_name if runner is not None else None,
                             "runner_up_pvalue": runner.pvalue if runner is not None else np.nan})
    return pd.DataFrame(rows, columns=SEQLET_COLUMNS)


# --- aggregation -------------------------------------------------------------------------------

def motif_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Which motifs drive predicted loops, per cell line and side (matched seqlets only).

    Returns
    -------
    DataFrame
        ``cell_line``, ``side``, ``motif_id``, ``motif_name``, ``family``, ``n_seqlets``, ``n_loops``, ``loop_fraction``
        (of that cell line's annotated loops), ``total_score``, ``mean_score``; most frequent first.
    """
    loops_per_line = table.groupby("cell_line")["loop"].nunique()
    matched = table[table["matched"]]
    summary = (matched.groupby(["cell_line", "side", "motif_id", "motif_name", "family"], dropna=False)
               .agg(n_seqlets=("loop", "size"), n_loops=("loop", "nunique"), total_score=("score", "sum"),
                    mean_score=("score", "mean")).reset_index())
    # as floats: with no matched seqlet (a model at chance) the empty aggregation leaves string-typed columns
    summary["loop_fraction"] = summary["n_loops"].astype(float) / summary["cell_line"].map(loops_per_line).astype(float)
    columns = ["cell_line", "side", "motif_id", "motif_name", "family", "n_seqlets", "n_loops", "loop_fraction",
               "total_score", "mean_score"]
    return summary[columns].sort_values(["cell_line", "side", "n_loops", "total_score"],
                                        ascending=[True, True, False, False], ignore_index=True)


def motif_pairs(table: pd.DataFrame) -> pd.DataFrame:
    """The cross-sequence grammar: (enhancer motif, promoter motif) pairs found together in a loop.

    Returns
    -------
    DataFrame
        ``cell_line``, ``enhancer_motif_id``, ``enhancer_motif``, ``promoter_motif_id``, ``promoter_motif``,
        ``n_loops``, ``loop_fraction``; most frequent first.
    """
    matched = table[table["matched"]]
    loops_per_line = table.groupby("cell_line")["loop"].nunique()
    counts: dict[tuple, int] = {}
    for (cell_line, _), loop in matched.groupby(["cell_line", "loop"]):
        sides = {side: sorted(set(zip(part["motif_id"], part["motif_name"]))) for side, part in loop.groupby("side")}
        for e, p in itertools.product(sides.get("enhancer", []), sides.get("promoter", [])):
            key = (cell_line, *e, *p)
            counts[key] = counts.get(key, 0) + 1
    columns = ["cell_line", "enhancer_motif_id", "enhancer_motif", "promoter_motif_id", "promoter_motif", "n_loops"]
    pairs = pd.DataFrame([(*key, n) for key, n in counts.items()], columns=columns)
    pairs["loop_fraction"] = pairs["n_loops"].astype(float) / pairs["cell_line"].map(loops_per_line).astype(float)
    return pairs.sort_values(["cell_line", "n_loops"], ascending=[True, False], ignore_index=True)
