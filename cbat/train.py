"""Train and evaluate one config on one split: AdamW, early stopping on validation AUPR, checkpoints, resume.

``train(cfg, dataset, split, settings, seed, out_dir)`` is the whole life of a run. With ``out_dir`` it
writes the files of the sweep-directory contract (``model.pt``, ``trace.parquet``, ``predictions.parquet``)
plus ``state.pt``, a per-epoch training state that ``resume=True`` continues from (deleted at the end).
Hook statistics are recorded in summary mode every ``hook_every`` steps, with every loss component and, on
those steps, the cosine between each auxiliary loss's gradient and the BCE gradient.
"""
from __future__ import annotations

import dataclasses
import math
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import torch
import yaml
from tqdm.auto import tqdm

from cbat import rundir
from cbat.batches import DeviceBatches
from cbat.config import CBATConfig, check_keys, parse_yaml, plain_fields
from cbat.hooks import record
from cbat.losses import CBATLoss
from cbat.metrics import DEFAULT_THRESHOLD, evaluate, learnt
from cbat.model import PRISMBackbone, build_model

CLASS_WEIGHTS = ("balanced", "none")
LR_SCHEDULES = ("constant", "cosine")
# Attention statistics during training read the first 2 pairs of a sampled batch and every 2nd query (an unbiased
# sample of the same means; the run's final summary reads a whole validation batch): the full maps cost about as
# much as the training step itself at 3000/2000 bp (one top-k over [8, 4, 300, 200] is 25 ms on a CPU thread).
HOOK_SAMPLE = (2, 2)


@dataclass(frozen=True)
class TrainSettings:
    """How to train and evaluate one run.

    Attributes
    ----------
    epochs : maximum passes over the training split.
    batch_size, lr, weight_decay : AdamW mini-batch training.
    patience : validations without a better validation AUPR before early stopping; they count only after
        ``warmup_epochs``, because models on cross-pair tasks often sit at chance for several epochs before
        learning takes off (placement probes: epochs 5-6 at lr 1e-3).
    warmup_epochs : epochs during which early stopping never fires (the best weights are still tracked).
    min_delta : the validation AUPR gain that resets patience; smaller gains still update the best weights but
        do not keep a run going that has plateaued (a model at 0.99 gaining 0.001 per epoch).
    lr_warmup_steps : optimisation steps over which the learning rate ramps linearly from lr / steps to lr
        (0: no ramp).
    lr_schedule : "constant", or "cosine" (decay from lr towards 0 over ``epochs``; settles the weights
        before early stopping picks them). Both are derived from the step counter, so a resumed run continues
        the same schedule.
    eval_every : epochs between validations (the last epoch is always validated).
    hook_every : record hook statistics (summary mode) every N optimisation steps, counted per epoch.
    threshold : probability threshold for precision, recall and F1 (0.5: see ``cbat.metrics``).
    device : "auto" (CUDA when available), "cpu", "cuda" or "cuda:<i>"; CUDA trains under bf16 autocast.
    max_steps : stop after this many optimisation steps in total (None: no limit).
    class_weight : "balanced" weights positives in the BCE by n_neg / n_pos of the training split (1 on
        balanced data; on imbalanced data it shifts calibration upward, use "none" for calibration studies).
    grad_clip : gradient-norm clip (0 switches clipping off; the norm is checked for NaN/inf either way).
    num_threads : torch CPU threads for this run (None: leave torch's setting alone).
    eval_batch_size : batch size for validation and test predictions.
    progress : show tqdm progress bars on stderr.
    compile : run training forwards through ``torch.compile`` (off by default: on CPU compiling takes
        minutes and did not win everywhere, see the README; each step equals eager within float tolerance;
        recorded steps run eagerly).
    """

    epochs: int = 8
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    patience: int = 3
    warmup_epochs: int = 4
    min_delta: float = 0.0
    lr_warmup_steps: int = 0
    lr_schedule: str = "constant"
    eval_every: int = 1
    hook_every: int = 25
    threshold: float = DEFAULT_THRESHOLD
    device: str = "auto"
    max_steps: Optional[int] = None
    class_weight: str = "balanced"
    grad_clip: float = 1.0
    num_threads: Optional[int] = None
    eval_batch_size: int = 256
    progress: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        plain_fields(self)
        for name in ("epochs", "batch_size", "patience", "eval_every", "hook_every", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"training setting {name!r} is {value!r}; expected a positive integer")
        for name in ("warmup_epochs", "lr_warmup_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"training setting {name!r} is {value!r}; expected an integer >= 0")
        if not isinstance(self.compile, bool):
            raise ValueError(f"training setting 'compile' is {self.compile!r}; expected true or false")
        for name in ("max_steps", "num_threads"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"training setting {name!r} is {value!r}; expected None or a positive integer")
        if not self.lr > 0 or self.weight_decay < 0 or self.grad_clip < 0 or not self.min_delta >= 0:
            raise ValueError("training settings 'lr' (> 0), 'weight_decay', 'grad_clip' and 'min_delta' (>= 0) are "
                             "out of range")
        if not 0 < self.threshold < 1:
            raise ValueError(f"training setting 'threshold' is {self.threshold}; expected a value in (0, 1)")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"training setting 'lr_schedule' is {self.lr_schedule!r}; expected one of "
                             f"{list(LR_SCHEDULES)}")
        if self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(f"training setting 'class_weight' is {self.class_weight!r}; expected one of "
                             f"{list(CLASS_WEIGHTS)}")
        numbered_cuda = self.device.startswith("cuda:") and self.device[5:].isdigit()
        if not (self.device in ("auto", "cpu", "cuda") or numbered_cuda):
            raise ValueError(f"training setting 'device' is {self.device!r}; expected auto, cpu, cuda or cuda:<i>")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "training settings") -> "TrainSettings":
        check_keys(cls, data, source, ValueError, noun="setting")
        try:
            return cls(**data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str, source: str = "training settings") -> "TrainSettings":
        return cls.from_dict(parse_yaml(text, source) or {}, source)

    def resolved_device(self) -> str:
        """The torch device string this run will use; ValueError for a CUDA device this machine lacks."""
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda"):
            index = int(self.device.partition(":")[2] or 0)
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if index >= count:
                raise ValueError(f"training setting 'device' is {self.device!r}, but this machine has {count} CUDA "
                                 "device(s); use cpu or auto")
        return self.device


class NumericalFault(RuntimeError):
    """A NaN/inf loss or gradient. The message names the step and the block where it first appeared."""


@dataclass
class TrainResult:
    """Everything one finished training produced (the model holds the best validation weights)."""

    model: PRISMBackbone
    cfg: CBATConfig
    settings: TrainSettings
    seed: int
    history: list[dict]
    metrics: dict
    predictions: pd.DataFrame
    trace: pd.DataFrame
    timings: dict
    best_epoch: int
    steps: int
    learnt: dict


@dataclass
class _Progress:
    """The resumable part of a training run (saved in ``state.pt`` after every epoch)."""

    epoch: int = 0
    step: int = 0
    best_aupr: Optional[float] = None
    best_epoch: int = 0
    best_state: Optional[dict] = None
    patience_aupr: Optional[float] = None  # the validation AUPR that last reset patience
    bad_evals: int = 0
    stopped: bool = False
    history: list = dataclasses.field(default_factory=list)
    trace_frames: list = dataclasses.field(default_factory=list)
    train_s: float = 0.0
    eval_s: float = 0.0


# --- files ---------------------------------------------------------------------------------------
def save_checkpoint(path: str | Path, model: torch.nn.Module, cfg: CBATConfig, **extra: Any) -> None:
    """Write a checkpoint that ``load_checkpoint`` turns back into ``(model, cfg)``."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    rundir.write_torch(path, {"config": cfg.to_dict(), "state_dict": state, **extra})


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[PRISMBackbone, CBATConfig]:
    """Load a ``model.pt`` written by training: returns the model (eval mode) and its config.

    A missing, truncated or corrupt file raises ``cbat.rundir.RunDirError`` naming it.
    """
    payload = rundir.read_torch(path, map_location=device)
    try:
        cfg = CBATConfig.from_dict(payload["config"], source=str(path))
        model = build_model(cfg).to(device)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, RuntimeError, TypeError) as err:
        raise rundir.RunDirError(f"{path}: not a CBAT checkpoint ({err})") from None
    return model.eval(), cfg


# --- helpers -------------------------------------------------------------------------------------
def _autocast(device: str):
    # bf16 autocast on CUDA only; on CPU full precision keeps runs reproducible and comparable.
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so the same seed gives the same run on CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def predict(model: torch.nn.Module, dataset, index: np.ndarray, batch_size: int = 256,
            device: Optional[str] = None) -> np.ndarray:
    """Logits for ``dataset`` rows ``index`` (eval mode, no gradients; the model's mode is restored)."""
    device = device or str(next(model.parameters()).device)
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.inference_mode(), _autocast(device):
            for start in range(0, len(index), batch_size):
                enhancer, promoter = dataset.onehot(index[start:start + batch_size])
                out.append(model(enhancer.to(device), promoter.to(device)).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)


def _cell_lines(dataset, index: np.ndarray) -> np.ndarray:
    meta = getattr(dataset, "meta", None)
    if meta is None or "cell_line" not in meta:
        return np.full(len(index), "all", dtype=object)
    return meta["cell_line"].to_numpy()[index].astype(str)


def _causes(dataset, index: np.ndarray) -> Optional[np.ndarray]:
    """The planted cause of each pair (synthetic benchmark), or None for data without one."""
    meta = getattr(dataset, "meta", None)
    if meta is None or "cause" not in meta:
        return None
    return meta["cause"].to_numpy()[index].astype(str)


def predictions_table(dataset, index: np.ndarray, logits: np.ndarray) -> pd.DataFrame:
    """A run's ``predictions.parquet`` rows for pairs ``index`` with their ``logits``: pair_index, cell_line, label,
    logit, prob, and cause on data with planted causes. Runs write it; attribution rebuilds it for other data."""
    logits = np.asarray(logits, dtype=np.float64)
    table = pd.DataFrame({"pair_index": index, "cell_line": _cell_lines(dataset, index),
                          "label": np.asarray(dataset.labels).astype(np.int64)[index], "logit": logits,
                          "prob": _sigmoid(logits)})
    causes = _causes(dataset, index)
    if causes is not None:
        table["cause"] = causes
    return table


def _block_of(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "blocks" and len(parts) > 1 else parts[0]


def _first_nonfinite_module(model: torch.nn.Module, enhancer: torch.Tensor, promoter: torch.Tensor) -> Optional[str]:
    """Re-run a forward with output checks on every module; the first (innermost, earliest) culprit."""
    found: list[str] = []

    def watch(name):
        def hook(module, args, output):
            if not found and torch.is_tensor(output) and not torch.isfinite(output).all():
                found.append(name)
        return hook

    handles = [m.register_forward_hook(watch(n)) for n, m in model.named_modules() if n]
    try:
        with torch.no_grad():
            model(enhancer, promoter)
    finally:
        for handle in handles:
            handle.remove()
    return found[0] if found else None


def _fault(what: str, step: int, epoch: int, where: Optional[str], detail: str = "") -> NumericalFault:
    place = f"first in {_block_of(where)} ({where})" if where else "not traced to a module (the loss itself)"
    return NumericalFault(f"non-finite {what} at step {step} (epoch {epoch}), {place}{detail}")


def _grad_norm(grads) -> float:
    return math.sqrt(sum(float(g.float().pow(2).sum()) for g in grads if g is not None))


def _log_losses(trace, parts: dict, loss_fn: CBATLoss, model: torch.nn.Module) -> None:
    """Loss components (raw and weighted) and, per active aux loss, its gradient's cosine with the BCE's."""
    for name, value in parts.items():
        weight = loss_fn.weights.get(name, 1.0)
        trace.log_scalar(f"loss.{name}", value.item())
        trace.log_scalar(f"loss.{name}", weight * value.item(), statistic="weighted")
    aux = [name for name in loss_fn.active_aux if name in parts]
    if not aux:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    main = torch.autograd.grad(parts["bce"], params, retain_graph=True, allow_unused=True)
    trace.log_scalar("loss.bce", _grad_norm(main), statistic="grad_norm")
    for name in aux:
        grads = torch.autograd.grad(parts[name], params, retain_graph=True, allow_unused=True)
        shared = [(a.flatten().float(), b.flatten().float()) for a, b in zip(main, grads)
                  if a is not None and b is not None]
        if shared:
            a, b = torch.cat([s[0] for s in shared]), torch.cat([s[1] for s in shared])
            scale = float(a.norm() * b.norm())
            # A zero gradient (e.g. the speculation hinge inactive) has no direction: NaN, not 0.
            cosine = max(-1.0, min(1.0, float(a @ b) / scale)) if scale > 0 else math.nan
            trace.log_scalar(f"loss.{name}", cosine, statistic="grad_cosine")
        # The norm of the term as it enters the total (weight included), so shares can be compared.
        trace.log_scalar(f"loss.{name}", loss_fn.weights[name] * _grad_norm(grads), statistic="grad_norm")


# --- the training loop ---------------------------------------------------------------------------
class _Run:
    """One training run's objects; methods are the phases of ``train``."""

    def __init__(self, cfg, dataset, split, settings, seed, out_dir):
        self.cfg, self.dataset, self.settings, self.seed = cfg, dataset, settings, seed
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.device = settings.resolved_device()
        self.labels = np.asarray(dataset.labels).astype(np.int64)
        self.batches = DeviceBatches(dataset, self.device)
        self.device_labels = torch.as_tensor(self.labels, dtype=torch.float32, device=self.device)
        self.train_idx, self.val_idx, self.test_idx = (_indices(split, part, len(self.labels))
                                                       for part in ("train", "val", "test"))
        positive_rate = float(self.labels[self.train_idx].mean())
        if positive_rate in (0.0, 1.0):
            raise ValueError(f"training split has only one class (positive rate {positive_rate}); need both")
        pos_weight = (1 - positive_rate) / positive_rate if settings.class_weight == "balanced" else 1.0
        seed_everything(seed)
        self.model = build_model(cfg, seed=seed).to(self.device)
        # The compiled wrapper shares the model's parameters; checkpoints and hooks use the model itself.
        self.forward = torch.compile(self.model) if settings.compile else self.model
        self.loss_fn = CBATLoss(cfg, positive_rate, pos_weight).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=settings.lr,
                                           weight_decay=settings.weight_decay)
        self.generator = torch.Generator().manual_seed(seed)
        self.progress = _Progress()

    # resumable state
    @property
    def state_path(self) -> Optional[Path]:
        return rundir.run_file(self.out_dir, "state") if self.out_dir is not None else None

    def _identity(self) -> dict:
        # What must match for a resume; epochs and max_steps may grow (train longer).
        return {"config": self.cfg.to_dict(), "seed": self.seed,
                "settings": {k: v for k, v in self.settings.to_dict().items()
                             if k not in ("device", "num_threads", "progress", "epochs", "max_steps", "compile")}}

    def save_state(self) -> None:
        # Only tensors and plain Python values, so the state loads with torch.load(weights_only=True).
        progress = dataclasses.asdict(self.progress)
        progress["trace_frames"] = [frame.to_dict(orient="list") for frame in self.progress.trace_frames]
        _, key, pos, has_gauss, gauss = np.random.get_state()
        payload = {"identity": self._identity(), "model": self.model.state_dict(),
                   "optimizer": self.optimizer.state_dict(), "loss": self.loss_fn.state_dict(),
                   "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                   "numpy_rng": [torch.from_numpy(key.astype(np.int64)), pos, has_gauss, gauss],
                   "python_rng": list(random.getstate()), "progress": progress}
        rundir.write_torch(self.state_path, payload)

    def load_state(self) -> bool:
        """Continue from ``state.pt``; an unreadable one is reported, removed, and the run starts over."""
        try:
            payload = rundir.read_torch(self.state_path, map_location=self.device)
        except rundir.RunDirError as err:
            warnings.warn(f"{err}; training this run from the start", stacklevel=3)
            self.state_path.unlink(missing_ok=True)
            return False
        if payload["identity"] != self._identity():
            raise ValueError(f"{self.state_path}: written by a different config, seed or settings; "
                             "remove it or train into another directory")
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.loss_fn.load_state_dict(payload["loss"])
        self.generator.set_state(payload["generator"].cpu())
        torch.set_rng_state(payload["torch_rng"].cpu())
        key, pos, has_gauss, gauss = payload["numpy_rng"]
        np.random.set_state(("MT19937", key.cpu().numpy().astype(np.uint32), pos, has_gauss, gauss))
        version, internal, gauss_next = payload["python_rng"]
        random.setstate((version, tuple(internal), gauss_next))
        progress = payload["progress"]
        progress["trace_frames"] = [pd.DataFrame(frame) for frame in progress["trace_frames"]]
        self.progress = _Progress(**progress)
        return True

    # phases
    def train_epoch(self) -> dict[str, float]:
        settings, progress, model = self.settings, self.progress, self.model
        model.train()
        sums: dict[str, torch.Tensor] = {}  # float64 on the device: read once per epoch, not per step
        batches = 0
        start_step = progress.step
        order = self.train_idx[torch.randperm(len(self.train_idx), generator=self.generator).numpy()]
        device_order = torch.as_tensor(order, device=self.device)  # one upload per epoch, not one per step
        params = [p for p in model.parameters() if p.requires_grad]
        epoch = progress.epoch + 1  # numbered from 1 in faults, as in the history
        with record(model, mode="summary", every=settings.hook_every, sample=HOOK_SAMPLE) as trace:
            for start in range(0, len(order), settings.batch_size):
                if settings.max_steps is not None and progress.step >= settings.max_steps:
                    break
                batch = device_order[start:start + settings.batch_size]
                enhancer, promoter = self.batches.onehot(batch)
                labels = self.device_labels[batch]
                aux = {} if "sparsity" in self.loss_fn.active_aux else None  # entropy only when a loss uses it
                # Sampled steps run eagerly: the recorder's hooks (host reads, data-dependent layouts) would split
                # a compiled graph into pieces per call site, whose guards exhaust dynamo's recompile limit; eager,
                # they also take the loss gradients of _log_losses (retain_graph) from a plain autograd graph.
                forward = model if trace.sampled else self.forward
                with _autocast(self.device):
                    logits = forward(enhancer, promoter, aux=aux)
                parts = self.loss_fn(logits, labels, aux)
                if not torch.isfinite(parts["total"]):
                    bad = [n for n, v in parts.items() if n != "total" and not torch.isfinite(v)]
                    raise _fault("loss", progress.step, epoch, _first_nonfinite_module(model, enhancer, promoter),
                                 f"; components {bad}")
                if trace.sampled:
                    _log_losses(trace, parts, self.loss_fn, model)
                self.optimizer.zero_grad(set_to_none=True)
                parts["total"].backward()
                self._set_lr(progress.step)
                norm = torch.nn.utils.clip_grad_norm_(params, settings.grad_clip or math.inf)
                if not torch.isfinite(norm):
                    culprit = next((n for n, p in model.named_parameters()
                                    if p.grad is not None and not torch.isfinite(p.grad).all()), None)
                    raise _fault("gradient", progress.step, epoch, culprit)
                self.optimizer.step()
                trace.next_step()
                progress.step += 1
                batches += 1
                for name, value in parts.items():
                    sums[name] = sums.get(name, 0.0) + value.detach().double()
        frame = trace.summary()
        frame["step"] += start_step
        progress.trace_frames.append(frame)
        return {f"loss.{name}": float(total) / max(batches, 1) for name, total in sums.items()}

    def _set_lr(self, step: int) -> None:
        settings = self.settings
        factor = min(1.0, (step + 1) / settings.lr_warmup_steps) if settings.lr_warmup_steps else 1.0
        if settings.lr_schedule == "cosine":
            total = settings.epochs * math.ceil(len(self.train_idx) / settings.batch_size)
            factor *= 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        for group in self.optimizer.param_groups:
            group["lr"] = settings.lr * factor

    def validate(self, losses: dict[str, float]) -> None:
        progress, settings = self.progress, self.settings
        logits = predict(self.model, self.dataset, self.val_idx, settings.eval_batch_size, self.device)
        pooled = evaluate(self.labels[self.val_idx], _sigmoid(logits), threshold=settings.threshold)["pooled"]
        progress.history.append({"epoch": progress.epoch, "step": progress.step, **losses,
                                 **{f"val_{k}": pooled[k] for k in ("aupr", "auroc", "f1", "ece", "mean_prob")}})
        aupr = pooled["aupr"]

        def beats(reference: Optional[float], delta: float = 0.0) -> bool:  # NaN (one class in validation) never beats
            return not math.isnan(aupr) and (reference is None or math.isnan(reference) or aupr > reference + delta)

        if progress.best_state is None or beats(progress.best_aupr):
            progress.best_aupr, progress.best_epoch = aupr, progress.epoch
            progress.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        if progress.patience_aupr is None or beats(progress.patience_aupr, settings.min_delta):
            progress.patience_aupr, progress.bad_evals = aupr, 0
        elif progress.epoch > settings.warmup_epochs:
            progress.bad_evals += 1
            progress.stopped = progress.bad_evals >= settings.patience

    def final_summary(self) -> pd.DataFrame:
        """One capture-free summary forward on a fixed validation batch, so every run has attention stats."""
        batch = self.val_idx[: min(64, self.settings.eval_batch_size)]
        enhancer, promoter = self.batches.onehot(batch)
        self.model.eval()
        with record(self.model, mode="summary", every=1) as trace, torch.no_grad(), _autocast(self.device):
            self.model(enhancer, promoter)
        frame = trace.summary()
        frame["step"] = self.progress.step
        return frame


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def _indices(split, part: str, n: int) -> np.ndarray:
    index = np.asarray(getattr(split, part), dtype=np.int64)
    if index.ndim != 1 or (index.size and (index.min() < 0 or index.max() >= n)):
        raise ValueError(f"split.{part}: expected a 1-D array of row indices in [0, {n})")
    if index.size == 0:
        raise ValueError(f"split.{part} is empty; the data set is too small for this split")
    return index


def train(cfg: CBATConfig, dataset, split, settings: Optional[TrainSettings] = None, seed: int = 0,
          out_dir: str | Path | None = None, resume: bool = False, keep_state: bool = False) -> TrainResult:
    """Train ``cfg`` on ``split.train``, early-stop on ``split.val`` AUPR, evaluate on ``split.test``.

    Parameters
    ----------
    cfg : the model config (its aux-loss weights switch the auxiliary losses on).
    dataset : an ``EPIDataset`` (``labels``, ``meta``, ``onehot(index)``).
    split : an object with integer index arrays ``train``, ``val`` and ``test``.
    settings : ``TrainSettings`` (defaults when None).
    seed : seeds weight init, batch order and every RNG; the same seed gives the same metrics on CPU.
    out_dir : when given, ``model.pt``, ``trace.parquet`` and ``predictions.parquet`` are written there,
        and ``state.pt`` after every epoch while training runs.
    resume : continue from ``out_dir/state.pt`` when it exists.
    keep_state : leave ``state.pt`` for the caller to remove once it has recorded the run (a sweep: stopped
        before its ``record.json``, the run then resumes from its last epoch instead of training again).

    Raises
    ------
    NumericalFault
        When a loss or gradient becomes NaN/inf; the message names the step and the block.
    """
    settings = settings or TrainSettings()
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    started, cpu_started = time.perf_counter(), time.process_time()
    run = _Run(cfg, dataset, split, settings, seed, out_dir)
    if resume and run.state_path is not None and run.state_path.exists():
        run.load_state()
    progress = run.progress
    bar = tqdm(total=settings.epochs, initial=progress.epoch, desc=f"train {cfg.name} s{seed}", leave=False,
               disable=not settings.progress)
    while progress.epoch < settings.epochs and not progress.stopped:
        tick = time.perf_counter()
        losses = run.train_epoch()
        progress.epoch += 1
        out_of_steps = settings.max_steps is not None and progress.step >= settings.max_steps
        tock = time.perf_counter()
        progress.train_s += tock - tick
        if progress.epoch % settings.eval_every == 0 or progress.epoch == settings.epochs or out_of_steps:
            run.validate(losses)
            progress.eval_s += time.perf_counter() - tock
            bar.set_postfix(val_aupr=f"{progress.history[-1]['val_aupr']:.3f}")
        progress.stopped = progress.stopped or out_of_steps
        if run.state_path is not None:
            run.save_state()
            rundir.announce(run.out_dir, f"epoch{progress.epoch}")
        bar.update(1)
    bar.close()

    tick = time.perf_counter()
    run.model.load_state_dict(progress.best_state)
    trace = pd.concat([f.assign(phase="train") for f in progress.trace_frames]
                      + [run.final_summary().assign(phase="final")], ignore_index=True)
    metrics, predictions = {}, None
    for part, index in (("val", run.val_idx), ("test", run.test_idx)):
        logits = predict(run.model, dataset, index, settings.eval_batch_size, run.device)
        probs = _sigmoid(logits)
        metrics[part] = evaluate(run.labels[index], probs, _cell_lines(dataset, index), settings.threshold,
                                 _causes(dataset, index))
        if part == "test":
            predictions = predictions_table(dataset, index, logits)
    learnt_check = learnt(predictions["label"].to_numpy(), predictions["prob"].to_numpy(), settings.threshold)
    progress.eval_s += time.perf_counter() - tick
    # cpu_s (this process's CPU time, all threads) estimates the wall time on an idle machine; a resumed
    # run counts only its last attempt here.
    timings = {"train_s": progress.train_s, "eval_s": progress.eval_s, "total_s": time.perf_counter() - started,
               "cpu_s": time.process_time() - cpu_started}
    result = TrainResult(model=run.model, cfg=cfg, settings=settings, seed=seed, history=progress.history,
                         metrics=metrics, predictions=predictions, trace=trace, timings=timings,
                         best_epoch=progress.best_epoch, steps=progress.step, learnt=learnt_check)
    if run.out_dir is not None:
        save_checkpoint(rundir.run_file(run.out_dir, "checkpoint"), run.model, cfg, seed=seed,
                        best_epoch=progress.best_epoch, settings=settings.to_dict())
        rundir.write_parquet(rundir.run_file(run.out_dir, "trace"), trace)
        rundir.write_parquet(rundir.run_file(run.out_dir, "predictions"), predictions)
        if not keep_state:
            run.state_path.unlink(missing_ok=True)
    return result
