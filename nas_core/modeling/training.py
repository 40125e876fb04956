"""Training and evaluation of one candidate: early stopping, per-epoch metrics, bf16 autocast on
CUDA. Knows nothing about Optuna: the trial hooks in through ``on_epoch``."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from nas_core.common.metric_names import DIRECTIONS
from nas_core.common.metrics import compute_metrics, objective_value
from nas_core.common.tasks import Task
from nas_core.modeling.batches import (
    EVAL_MAX_TOKENS,
    Encoded,
    batch_targets,
    forward,
    length_batches,
)
from nas_core.modeling.build import trainable_state
from nas_core.modeling.distillation import Distillation
from nas_core.modeling.losses import (
    batch_mae,
    contrastive_groups,
    labelled_count,
    supervised_contrastive,
    task_loss,
)
from nas_core.modeling.modules import PooledHead
from nas_core.modeling.schedule import batch_lr


class TrainingCancelled(Exception):
    """The user stopped the search; raised between epochs."""


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' asked for, but no CUDA GPU is available here: use "
                         "--device cpu or auto.")
    return torch.device(device)


def autocast(device: torch.device, bf16: bool | None = None):
    """bf16 autocast on a GPU (``bf16=None``: whenever the device is CUDA)."""
    if device.type == "cuda" and bf16 is not False:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass(frozen=True)
class TrainSettings:
    """How one candidate trains, built once and passed whole (as nanoGPT passes ``GPTConfig``).
    A value left None is the architecture's own (learning rate, epochs, batch size)."""

    metric: str  # the validation metric early stopping watches
    device: torch.device
    seed: int = 0
    patience: int = 3  # epochs without improvement before training stops
    max_epochs: int | None = None
    first_epoch: int = 1  # a distilled student's curve continues its teacher's
    batch_size: int | None = None  # an out-of-memory retry halves it
    lr: float | None = None
    max_tokens: int | None = None  # cap on padded tokens per batch
    min_tokens: int | None = None  # short sequences: fill batches to about this many tokens
    lr_rule: str = "none"  # how a filled batch's learning rate follows it (modeling.schedule)
    bf16: bool | None = None  # None: bf16 autocast on CUDA, full precision elsewhere
    should_stop: Callable[[], bool] | None = None  # polled before every batch (cancel)
    on_epoch: Callable[[EpochRecord], None] | None = None  # after each epoch (Optuna reports)


# -- evaluation -----------------------------------------------------------------------------
@torch.inference_mode()
def predict_outputs(model: PooledHead, data: Encoded | list[np.ndarray], *,
                    device: torch.device, pad_id: int, batch_size: int = 64,
                    max_tokens: int = EVAL_MAX_TOKENS,
                    progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Probabilities (classification) or values in label units (regression), input order.

    Per residue: an object array with one array per sequence, (residues, classes)
    probabilities or (residues,) values."""
    if not isinstance(data, Encoded):
        data = Encoded(list(data), np.zeros(len(data)))
    model.eval()
    info = model.info
    if info.per_residue:
        out = np.empty(len(data), dtype=object)
    else:
        out = np.zeros((len(data), info.n_outputs), dtype=np.float64)
    done = 0
    for batch in length_batches(data.lengths, batch_size, max_tokens=max_tokens):
        with autocast(device):
            logits, _ = forward(model, data, batch, pad_id, device)
        logits = logits.float()
        if info.regression:
            result = (logits * info.target_std + info.target_mean).cpu().numpy()
        else:
            result = torch.softmax(logits / info.temperature, dim=-1).cpu().numpy()
        if info.per_residue:
            for row, i in enumerate(batch):  # residues are tokens 1..n (after <cls>)
                values = result[row, 1: len(data.ids[i]) - 1].astype(np.float64)
                out[i] = values[:, 0] if info.regression else values
        else:
            out[batch] = result
        done += len(batch)
        if progress:
            progress(done, len(data))
    return out[:, 0] if info.task.label_kind == Task.REGRESSION else out


def evaluate(model: PooledHead, data: Encoded, *, device: torch.device, pad_id: int,
             raw_targets: np.ndarray) -> tuple[dict, np.ndarray]:
    output = predict_outputs(model, data, device=device, pad_id=pad_id)
    return compute_metrics(model.info.task, raw_targets, output), output


# -- training -------------------------------------------------------------------------------
@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_mae: float
    val: dict
    seconds: float

    def flat(self) -> dict:
        row = {"epoch": self.epoch, "train_loss": self.train_loss, "train_mae": self.train_mae,
               "seconds": round(self.seconds, 3)}
        row.update({f"val_{k}": v for k, v in self.val.items()})
        return row


@dataclass
class TrainResult:
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    best_val: dict = field(default_factory=dict)
    best_state: dict = field(default_factory=dict)
    stopped_early: bool = False


def train(model: PooledHead, train_data: Encoded, val_data: Encoded, val_targets_raw: np.ndarray,
          settings: TrainSettings, *, pad_id: int, distill: Distillation | None = None
          ) -> TrainResult:
    """Train with early stopping on the validation metric; keep the best epoch's weights.

    ``settings.on_epoch`` runs after each epoch (Optuna reports and prunes there by raising);
    ``settings.should_stop`` is polled before every batch and raises
    :class:`TrainingCancelled`, so a cancel takes effect within one optimiser step. With
    ``distill`` the loss adds the teacher's soft targets (a pruned student's recovery).
    """
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model.to(settings.device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr or model.arch.lr,
                                  weight_decay=model.arch.weight_decay)
    groups = (np.zeros(len(train_data)) if model.info.per_residue
              else _contrastive_groups(model.info.task, train_data.targets))
    result = TrainResult()
    stopper = _EarlyStopping(settings.metric, settings.patience)
    first, steps = settings.first_epoch, 0
    for epoch in range(first, first + (settings.max_epochs or model.arch.max_epochs)):
        if settings.should_stop and settings.should_stop():
            raise TrainingCancelled(f"stopped by the user before epoch {epoch}")
        started = time.perf_counter()
        batches = length_batches(train_data.lengths, settings.batch_size or model.arch.batch_size,
                                 max_tokens=settings.max_tokens, min_tokens=settings.min_tokens,
                                 rng=rng)
        loss, mae = train_epoch(model, train_data, batches, groups, optimizer, params,
                                epoch=epoch, pad_id=pad_id, settings=settings, distill=distill,
                                first_step=steps)
        steps += len(batches)
        val, _ = evaluate(model, val_data, device=settings.device, pad_id=pad_id,
                          raw_targets=val_targets_raw)
        record = EpochRecord(epoch, loss, mae, val, time.perf_counter() - started)
        result.history.append(record)
        if stopper.improved(val):
            result.best_epoch, result.best_val = epoch, val
            result.best_state = trainable_state(model)
        if settings.on_epoch:
            settings.on_epoch(record)
        if stopper.exhausted:
            result.stopped_early = True
            break
    return result


class _EarlyStopping:
    """The best validation score so far; ties on the metric (a saturated validation score) go
    to the lower validation loss."""

    def __init__(self, metric: str, patience: int) -> None:
        self.metric, self.patience = metric, patience
        self.sign = 1.0 if DIRECTIONS[metric] == "maximize" else -1.0
        self.best: tuple[float, float] = (-math.inf, -math.inf)
        self.waited = 0

    def improved(self, val: dict) -> bool:
        score = (self.sign * objective_value(val, self.metric), -float(val.get("loss") or 0.0))
        if score > self.best:
            self.best, self.waited = score, 0
            return True
        self.waited += 1
        return False

    @property
    def exhausted(self) -> bool:
        return self.waited >= self.patience


def _contrastive_groups(task: Task, targets: np.ndarray) -> np.ndarray:
    """Groups for the contrastive term: classes, or label quartiles for regression."""
    edges = np.quantile(targets, [0.25, 0.5, 0.75]) if task.label_kind == Task.REGRESSION else None
    return contrastive_groups(task, targets, edges)


def train_epoch(model: PooledHead, data: Encoded, batches: list[np.ndarray],
                groups_all: np.ndarray, optimizer: torch.optim.Optimizer,
                params: list[torch.nn.Parameter], *, epoch: int, pad_id: int,
                settings: TrainSettings, distill: Distillation | None = None,
                first_step: int = 0) -> tuple[float, float]:
    """One pass over ``batches``; returns the epoch's task loss (in label units) and MAE. A
    batch filled beyond the architecture's size trains at the rate ``settings.lr_rule`` gives
    it (``first_step``: optimiser steps made before this epoch, for the warm-up)."""
    arch, info = model.arch, model.info
    device, should_stop = settings.device, settings.should_stop
    task = info.task
    weights = (torch.tensor(info.class_weights, dtype=torch.float32, device=device)
               if arch.class_weighted and info.class_weights else None)
    model.train()
    backbone = getattr(model, "esm", None)
    if arch.adaptation == "frozen" and isinstance(backbone, torch.nn.Module):
        backbone.eval()  # no dropout in a frozen backbone
    total_loss = total_mae = 0.0
    seen = 0
    base_lr, batch_size = settings.lr or arch.lr, settings.batch_size or arch.batch_size
    for step, batch in enumerate(batches):
        if should_stop and should_stop():
            raise TrainingCancelled(f"stopped by the user at step {step + 1} of epoch {epoch}")
        with autocast(device, settings.bf16):
            logits, pooled = forward(model, data, batch, pad_id, device)
        targets = batch_targets(data, batch, logits.shape[1], info.per_residue, device)
        supervised = task_loss(task, logits, targets, weights)
        loss = supervised
        if distill is not None:
            loss = (1 - distill.config.alpha) * supervised + distill.loss(task, logits, pooled,
                                                                         batch)
        if arch.contrastive_weight > 0 and len(batch) > 1 and not info.per_residue:
            groups = torch.as_tensor(groups_all[batch], device=device)
            loss = loss + arch.contrastive_weight * supervised_contrastive(
                pooled, groups, arch.temperature)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the training loss became {loss.item()} at epoch {epoch} "
                                     f"(learning rate {arch.lr:.1e} is likely too high)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        for group in optimizer.param_groups:
            group["lr"] = batch_lr(base_lr, len(batch), batch_size, settings.lr_rule,
                                   first_step + step)
        optimizer.step()
        with torch.no_grad():
            # curves show the task loss in label units, comparable with validation
            # (per residue, each labelled residue counts once)
            scale = info.target_std ** 2 if info.regression else 1.0
            n = labelled_count(task, targets)
            total_loss += supervised.item() * scale * n
            total_mae += batch_mae(task, logits.float(), targets, model) * n
        seen += n
    return total_loss / max(seen, 1), total_mae / max(seen, 1)
