"""CBAT Lab: switchable CBAT mechanisms, hook points, sweeps and verdicts for EPI attention models.

The names below load on first use (PEP 562): ``import cbat.report`` or ``import cbat.config`` then costs no torch
or scikit-learn import, which keeps short-lived processes such as the report's papermill child quick.
"""
from importlib import import_module

# public name -> the module that defines it
_EXPORTS = {"PRESETS": "cbat.config", "CBATConfig": "cbat.config", "ConfigError": "cbat.config",
            "load_config": "cbat.config", "preset": "cbat.config", "hook_names": "cbat.hooks", "record": "cbat.hooks",
            "PRISMBackbone": "cbat.model", "build_model": "cbat.model"}
__all__ = ["data", *_EXPORTS]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "data":
        return import_module("cbat.data")
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'cbat' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
