"""Simulated genomic loci: promoters on human-sized chromosomes, shared by several pairs, and cis enhancers.

Promoter sharing follows TargetFinder: a few active promoters collect most positive pairs (activity drawn
log-normally, positives assigned in proportion to it) while negatives pick promoters uniformly, so a
promoter's own positive rate leaks the label under a random pair split.
"""
from __future__ import annotations

import numpy as np

# GRCh38 chromosome sizes, Mb (rounded)
CHROM_SIZES_MB = {"chr1": 248, "chr2": 242, "chr3": 198, "chr4": 190, "chr5": 181, "chr6": 171, "chr7": 159,
                  "chr8": 145, "chr9": 138, "chr10": 134, "chr11": 135, "chr12": 133, "chr13": 114, "chr14": 107,
                  "chr15": 102, "chr16": 90, "chr17": 83, "chr18": 80, "chr19": 59, "chr20": 64, "chr21": 47,
                  "chr22": 51, "chrX": 156}
POSITIVES_PER_PROMOTER = 4.0
MIN_DISTANCE_BP, MAX_DISTANCE_BP = 10_000, 1_000_000


def assign_promoters(rng: np.random.Generator, labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Promoter index per pair of one cell line and the number of promoters in its pool."""
    n_pos = int(labels.sum())
    n_promoters = max(2, int(np.ceil(max(n_pos, 1) / POSITIVES_PER_PROMOTER)))
    activity = rng.lognormal(0.0, 1.5, n_promoters)
    index = np.empty(len(labels), dtype=np.int64)
    index[labels == 1] = rng.choice(n_promoters, n_pos, p=activity / activity.sum())
    index[labels == 0] = rng.integers(0, n_promoters, int((labels == 0).sum()))
    return index, n_promoters


def promoter_loci(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Chromosome and TSS (bp) of ``n`` promoters, chromosomes drawn in proportion to their size."""
    names = np.array(list(CHROM_SIZES_MB))
    sizes = np.array(list(CHROM_SIZES_MB.values()), dtype=np.float64) * 1e6
    pick = rng.choice(len(names), n, p=sizes / sizes.sum())
    tss = (MAX_DISTANCE_BP + rng.random(n) * (sizes[pick] - 2 * MAX_DISTANCE_BP)).astype(np.int64)
    return names[pick], tss


def enhancer_centres(rng: np.random.Generator, tss: np.ndarray, upstream: np.ndarray) -> np.ndarray:
    """Enhancer centres at a log-uniform distance (10 kb - 1 Mb) on the given side of each TSS."""
    distance = np.exp(rng.uniform(np.log(MIN_DISTANCE_BP), np.log(MAX_DISTANCE_BP), len(tss))).astype(np.int64)
    return np.where(upstream, tss - distance, tss + distance)
