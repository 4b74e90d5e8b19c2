"""Data: encoding, loaders for the field's formats, leakage-aware splits, the synthetic benchmark.

``synthetic`` builds the embedded benchmark, ``load`` reads tables / FASTA triplets / coordinates + genome,
``split`` makes chromosome, cell-line or (with a warning) random splits, ``propensity_baseline`` measures
pair leakage on any dataset.
"""
from cbat.data.dataset import EPIDataset
from cbat.data.encoding import ONEHOT_TABLE, SequenceError, decode, encode, onehot
from cbat.data.loaders import DataError, load, load_coordinates, load_fasta_triplet
from cbat.data.oracle import oracle_scores
from cbat.data.propensity import propensity_baseline, propensity_scores
from cbat.data.splits import SPLITS, Split, split
from cbat.data.synthetic import synthetic
from cbat.data.tasks import TASKS

__all__ = ["EPIDataset", "DataError", "ONEHOT_TABLE", "SPLITS", "SequenceError", "Split", "TASKS", "decode",
           "encode", "load", "load_coordinates", "load_fasta_triplet", "onehot", "oracle_scores",
           "propensity_baseline", "propensity_scores", "split", "synthetic"]
