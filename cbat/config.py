"""One config dataclass that holds every mechanism switch of the CBAT log; presets are YAML data."""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import numpy as np
import yaml

LOCAL_EXTRACTORS = ("none", "reshape2d", "ms_conv")
NORMALISERS = ("softmax", "hard_topk", "temp_softmax", "sparsemax", "entmax15")
DIRECTIONS = ("e_from_p", "bidirectional")
ANCHOR_MODES = ("concat", "gather_broadcast")
GATES = ("none", "sigmoid", "temp_sigmoid")
MASK_KINDS = ("sliding", "causal", "block")
INTERACTIONS = ("cross", "none")
BLOCK_STEPS = ("joint_attn", "cross_attn", "ffn")


class ConfigError(ValueError):
    """A config that names an unknown switch or an impossible combination."""


@dataclass(frozen=True)
class CBATConfig:
    """Every switch of the model. Field names follow the log where it gives one.

    Lengths are in base pairs; ``window_size`` is in tokens (one token = ``stem_pool`` bp).
    """

    name: str = "custom"
    # sizes
    d_model: int = 64
    n_heads: int = 4
    n_blocks: int = 1
    ffn_mult: int = 2
    dropout: float = 0.0
    stem_kernel: int = 15
    stem_pool: int = 10
    # local feature extractor (log: 2-D reshape in v1, multi-scale 1-D conv pyramid in v2)
    local: str = "none"
    ms_kernels: tuple[int, ...] = (7, 15, 31)
    # attention normaliser (log: hard top-k in v1, temperature soft sparsity in v2)
    sparsity: str = "softmax"
    topk: int = 8
    temperature: float = 1.0
    # interaction: "none" is the no_cross control (each side pooled on its own)
    interaction: str = "cross"
    direction: str = "e_from_p"
    # anchors (log: concatenated into [promoter, anchors, enhancer]; gather_broadcast = inducing points)
    n_anchors: int = 0
    anchor_mode: str = "concat"
    # gates (log: sigmoid in v1; temperature clamp_min(0.5) plus a small residual in v2)
    gate: str = "none"
    gate_min_temperature: float = 0.5
    gate_residual: float = 0.1
    # locality mask, applied to every attention between positioned tokens (anchors exempt)
    window_size: Optional[int] = None
    mask_kind: str = "sliding"
    # position
    rope: bool = True
    rope_base: float = 10000.0
    pos_modulation: bool = False
    pos_modulation_freqs: int = 8
    # block recipe, run in order inside every block
    block_recipe: tuple[str, ...] = ("cross_attn", "ffn")
    # auxiliary losses (weights; 0 switches a loss off)
    sparsity_loss_weight: float = 0.0
    sparsity_target: float = 0.5
    immax_weight: float = 0.0
    speculation_weight: float = 0.0

    def __post_init__(self) -> None:
        plain_fields(self)
        # YAML/JSON give lists; the dataclass is frozen and hashable, so store tuples.
        for name in ("ms_kernels", "block_recipe"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        validate(self)

    # --- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "CBATConfig":
        check_keys(cls, data, source, ConfigError)
        try:
            return cls(**data)
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_yaml(cls, text: str, source: str = "config") -> "CBATConfig":
        return cls.from_dict(parse_yaml(text, source) or {}, source)

    @classmethod
    def from_json(cls, text: str, source: str = "config") -> "CBATConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{source}: not valid JSON ({err})") from None
        return cls.from_dict(data, source)

    @classmethod
    def from_file(cls, path: str | Path) -> "CBATConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        text = path.read_text()
        if path.suffix == ".json":
            return cls.from_json(text, str(path))
        if path.suffix in (".yaml", ".yml"):
            return cls.from_yaml(text, str(path))
        raise ConfigError(f"{path}: expected a .yaml, .yml or .json config file")

    # --- derived ------------------------------------------------------------------------
    @property
    def uses_cross(self) -> bool:
        return self.interaction == "cross"

    @property
    def bidirectional(self) -> bool:
        return self.direction == "bidirectional"


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats: ``1e-3`` is a number, as in JSON (YAML 1.1 wants ``1.0e-3``
    and PyYAML read ``lr: 1e-3`` as the string "1e-3")."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
               r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def parse_yaml(text: str, source: str) -> Any:
    """YAML (YAML 1.2 floats, see ``_Loader``) or JSON; a file that does not parse is one ConfigError naming
    ``source`` and where the parser stopped."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        try:  # JSON that YAML refuses (tab indentation)
            return json.loads(text)
        except ValueError:
            raise ConfigError(f"{source}: not valid YAML ({' '.join(str(err).split())})") from None


def plain_fields(obj: Any) -> None:
    """Turn numpy scalars in a dataclass's fields (and in their lists) into Python ones, in place: a value from a
    numpy grid (``np.int64(32)``, ``np.float32(1e-3)``) then passes the same checks as 32 and is stored and
    written to JSON as a plain number."""
    def plain(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, (list, tuple)):
            return type(value)(plain(v) for v in value)
        return value

    for f in fields(obj):
        object.__setattr__(obj, f.name, plain(getattr(obj, f.name)))


def check_keys(cls: type, data: Any, source: str, error: type[Exception], noun: str = "key") -> None:
    """Raise ``error`` naming ``source`` unless ``data`` is a mapping whose keys are fields of dataclass ``cls``."""
    if not isinstance(data, dict):
        raise error(f"{source}: expected a mapping of {noun}s, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise error(f"{source}: unknown {noun}(s) {unknown}; known {noun}s are {sorted(known)}")


def _choice(cfg: CBATConfig, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(cfg, name)
    if value not in allowed:
        raise ConfigError(f"field {name!r} is {value!r}; expected one of {list(allowed)}")


def validate(cfg: CBATConfig) -> None:
    """Raise ConfigError with one line naming the field when a switch or combination is impossible."""
    _choice(cfg, "local", LOCAL_EXTRACTORS)
    _choice(cfg, "sparsity", NORMALISERS)
    _choice(cfg, "direction", DIRECTIONS)
    _choice(cfg, "anchor_mode", ANCHOR_MODES)
    _choice(cfg, "gate", GATES)
    _choice(cfg, "mask_kind", MASK_KINDS)
    _choice(cfg, "interaction", INTERACTIONS)
    for name in ("d_model", "n_heads", "n_blocks", "ffn_mult", "stem_kernel", "stem_pool", "topk",
                 "pos_modulation_freqs"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"field {name!r} is {value!r}; expected a positive integer")
    for name in ("temperature", "gate_min_temperature", "gate_residual", "rope_base", "dropout", "sparsity_target",
                 "sparsity_loss_weight", "immax_weight", "speculation_weight"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"field {name!r} is {value!r}; expected a finite number")
    if not 0.0 <= cfg.dropout < 1.0:
        raise ConfigError(f"field 'dropout' is {cfg.dropout}; expected a probability in [0, 1)")
    if cfg.rope_base <= 0:
        raise ConfigError(f"field 'rope_base' is {cfg.rope_base}; expected > 0")
    if cfg.d_model % cfg.n_heads:
        raise ConfigError(f"field 'd_model' ({cfg.d_model}) must be divisible by 'n_heads' ({cfg.n_heads})")
    if cfg.rope and (cfg.d_model // cfg.n_heads) % 2:
        raise ConfigError("field 'rope' needs an even head dimension (d_model / n_heads)")
    if not cfg.block_recipe:
        raise ConfigError("field 'block_recipe' is empty; expected steps from " + str(list(BLOCK_STEPS)))
    for step in cfg.block_recipe:
        if step not in BLOCK_STEPS:
            raise ConfigError(f"field 'block_recipe' has step {step!r}; expected steps from {list(BLOCK_STEPS)}")
    if len(set(cfg.block_recipe)) != len(cfg.block_recipe):
        raise ConfigError(f"field 'block_recipe' repeats a step: {list(cfg.block_recipe)}")
    for name in ("rope", "pos_modulation"):  # a string such as "false" would count as true
        if not isinstance(getattr(cfg, name), bool):
            raise ConfigError(f"field {name!r} is {getattr(cfg, name)!r}; expected true or false")
    if (not isinstance(cfg.ms_kernels, (tuple, list)) or not cfg.ms_kernels
            or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0 for k in cfg.ms_kernels)):
        raise ConfigError(f"field 'ms_kernels' is {cfg.ms_kernels!r}; expected a list of odd positive kernel sizes")
    if cfg.temperature <= 0:
        raise ConfigError(f"field 'temperature' is {cfg.temperature}; expected > 0")
    if cfg.gate_min_temperature <= 0 or cfg.gate_residual < 0:
        raise ConfigError("fields 'gate_min_temperature' (> 0) and 'gate_residual' (>= 0) are out of range")
    if isinstance(cfg.n_anchors, bool) or not isinstance(cfg.n_anchors, int) or cfg.n_anchors < 0:
        raise ConfigError(f"field 'n_anchors' is {cfg.n_anchors!r}; expected an integer >= 0")
    if cfg.window_size is not None and (isinstance(cfg.window_size, bool) or not isinstance(cfg.window_size, int)
                                        or cfg.window_size < 1):
        raise ConfigError(f"field 'window_size' is {cfg.window_size!r}; expected None (global) or a positive integer")
    if not 0.0 < cfg.sparsity_target < 1.0:
        raise ConfigError(f"field 'sparsity_target' is {cfg.sparsity_target}; expected a value in (0, 1)")
    for name in ("sparsity_loss_weight", "immax_weight", "speculation_weight"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"field {name!r} is {getattr(cfg, name)}; expected >= 0")
    attends = {"joint_attn", "cross_attn"} & set(cfg.block_recipe)
    if cfg.interaction == "none":
        if attends:
            raise ConfigError("interaction 'none' (no_cross control) cannot have attention steps in 'block_recipe'")
        if cfg.n_anchors:
            raise ConfigError("interaction 'none' (no_cross control) cannot use anchors")
        if cfg.window_size is not None:
            raise ConfigError("interaction 'none' has no attention for 'window_size' to limit")
    elif not attends:
        raise ConfigError("interaction 'cross' needs 'cross_attn' or 'joint_attn' in 'block_recipe'")
    if cfg.n_anchors and cfg.anchor_mode == "concat" and "joint_attn" not in cfg.block_recipe:
        raise ConfigError("anchor_mode 'concat' puts anchors into the joint [promoter, anchors, enhancer] "
                          "sequence; add 'joint_attn' to 'block_recipe' or use 'gather_broadcast'")
    if cfg.sparsity_loss_weight and cfg.sparsity == "hard_topk":
        raise ConfigError("'sparsity_loss_weight' needs a soft normaliser; hard_topk has no gradient to shape")


PRESETS: tuple[str, ...] = ("baseline", "cbat_v1", "cbat_v2", "cbat_v3", "no_cross")


def preset(name: str, **overrides: Any) -> CBATConfig:
    """Return a preset config (the log's versions), optionally with fields replaced."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; expected one of {list(PRESETS)}")
    text = resources.files("cbat.presets").joinpath(f"{name}.yaml").read_text()
    cfg = CBATConfig.from_yaml(text, source=f"preset {name}")
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


def load_config(spec: str | Path) -> CBATConfig:
    """A preset name or a path to a YAML/JSON config file."""
    if str(spec) in PRESETS:
        return preset(str(spec))
    if not Path(spec).is_file():  # e.g. an ablation name such as baseline+window, which names a variant instead
        raise ConfigError(f"{spec}: neither a preset ({', '.join(PRESETS)}) nor a config file")
    return CBATConfig.from_file(spec)
