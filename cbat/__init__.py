"""CBAT Lab: switchable CBAT mechanisms, hook points, sweeps and verdicts for EPI attention models."""
from cbat import data
from cbat.config import PRESETS, CBATConfig, ConfigError, load_config, preset
from cbat.hooks import hook_names, record
from cbat.model import PRISMBackbone, build_model

__all__ = ["PRESETS", "data", "CBATConfig", "ConfigError", "PRISMBackbone", "build_model", "hook_names", "load_config",
           "preset", "record"]
__version__ = "0.1.0"
