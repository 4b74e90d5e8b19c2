"""Data: encoding, loaders for the field's formats, leakage-aware splits, the synthetic benchmark.

``synthetic`` builds the embedded benchmark, ``load`` reads tables / FASTA triplets / coordinates + genome,
``split`` makes chromosome, cell-line or (with a warning) random splits; the no-sequence baselines are
``propensity_baseline`` (pair leakage, any dataset) and ``distance_baseline`` (data with coordinates).

The names load on first use (PEP 562), as in ``cbat``: building the CLI's parser reads ``cbat.data.tasks`` and
the generator's defaults without importing scikit-learn or torch.
"""
from importlib import import_module
from pkgutil import iter_modules

# public name -> the submodule that defines it
_EXPORTS = {"EPIDataset": "dataset", "distance_baseline": "distance", "distance_scores": "distance",
            "genomic_distance": "distance", "ONEHOT_TABLE": "encoding", "SequenceError": "encoding",
            "decode": "encoding", "encode": "encoding", "onehot": "encoding", "DataError": "loaders",
            "load": "loaders", "load_coordinates": "loaders", "load_fasta_triplet": "loaders",
            "oracle_scores": "oracle", "propensity_baseline": "propensity", "propensity_scores": "propensity",
            "SPLITS": "splits", "Split": "splits", "split": "splits", "synthetic": "synthetic", "TASKS": "tasks"}
__all__ = sorted(_EXPORTS)
_SUBMODULES = {module.name for module in iter_modules(__path__)}


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(f"cbat.data.{_EXPORTS[name]}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBMODULES:  # cbat.data.loaders.FORMATS and the like work after a bare `import cbat.data`
        return import_module(f"cbat.data.{name}")
    raise AttributeError(f"module 'cbat.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


# The generator shares its submodule's name: importing ``cbat.data.synthetic`` (as the CLI's parser does) binds
# the package attribute to the module, so the function is bound here, after it (numpy and pandas only).
from cbat.data.synthetic import synthetic  # noqa: E402
