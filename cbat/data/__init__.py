"""Data: encoding, loaders for the field's formats, leakage-aware splits, the synthetic benchmark.

``synthetic`` builds the embedded benchmark, ``load`` reads tables / FASTA triplets / coordinates + genome,
``split`` makes chromosome, cell-line or (with a warning) random splits; the no-sequence baselines are
``propensity_baseline`` (pair leakage, any dataset) and ``distance_baseline`` (data with coordinates).
"""
from cbat.data.dataset import EPIDataset
from cbat.data.distance import distance_baseline, distance_scores, genomic_distance
from cbat.data.encoding import ONEHOT_TABLE, SequenceError, decode, encode, onehot
from cbat.data.loaders import DataError, load, load_coordinates, load_fasta_triplet
from cbat.data.oracle import oracle_scores
from cbat.data.propensity import propensity_baseline, propensity_scores
from cbat.data.splits import SPLITS, Split, split
from cbat.data.synthetic import synthetic
from cbat.data.tasks import TASKS

__all__ = ["EPIDataset", "DataError", "ONEHOT_TABLE", "SPLITS", "SequenceError", "Split", "TASKS", "decode",
           "distance_baseline", "distance_scores", "encode", "genomic_distance", "load", "load_coordinates",
           "load_fasta_triplet", "onehot", "oracle_scores", "propensity_baseline", "propensity_scores", "split",
           "synthetic"]
