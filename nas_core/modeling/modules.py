"""The modules of a candidate: an ESM-2 backbone (cut to k layers, adapted), pooling and a head;
and the same pooling + head alone, trained on cached representations of a frozen backbone."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from nas_core.common.metric_names import IGNORE_INDEX
from nas_core.common.tasks import Task
from nas_core.modeling.architecture import CONV_KERNEL, Architecture
from nas_core.modeling.pruning import Compaction

# how many pooled vectors wide a siamese pair head's input is
PAIR_WIDTH = {"symmetric": 3, "concat": 2, "cross": 1}
# the modules behind the names in nas_core.modeling.architecture.ACTIVATIONS
ACTIVATION_LAYERS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class TaskInfo:
    """What the head predicts, and how its training targets were scaled."""

    task: Task
    label_names: list[str] | None
    target_mean: float = 0.0  # regression targets are standardised for training
    target_std: float = 1.0
    # per-residue classification: each class's weight in the loss (inverse frequency), when the
    # architecture asks for class weights
    class_weights: list[float] | None = None
    # classification: the logits are divided by this before the softmax (temperature scaling,
    # fitted on the validation split when the model is finalised; 1 = as trained)
    temperature: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", Task(self.task))  # a saved config's text

    @classmethod
    def fitted(cls, task: Task, label_names: list[str] | None,
               train_targets: np.ndarray) -> TaskInfo:
        """The description of a model trained on ``train_targets`` (class indices or values
        in label units): the values' mean and spread, or the per-residue class weights."""
        if task.is_regression:
            values = (np.concatenate(list(train_targets)) if task.per_residue
                      else np.asarray(train_targets, dtype=float))
            values = values[np.isfinite(values)]
            return cls(task, None, float(values.mean()), float(values.std()) or 1.0)
        names = list(label_names or [])
        weights = (inverse_frequency(train_targets, len(names)) if task.per_residue else
                   inverse_frequency([np.asarray(train_targets, dtype=np.int64)], len(names))
                   if task.per_pair else None)
        return cls(task, names, class_weights=weights)

    def standardise(self, targets: np.ndarray) -> np.ndarray:
        """Targets in label units as the model learns them: regression values standardised
        (per residue, each protein's array); class indices unchanged."""
        if not self.regression:
            return targets
        if self.per_residue:
            out = np.empty(len(targets), dtype=object)
            out[:] = [(np.asarray(t) - self.target_mean) / self.target_std for t in targets]
            return out
        return (np.asarray(targets, dtype=float) - self.target_mean) / self.target_std

    @property
    def per_residue(self) -> bool:
        return self.task.per_residue

    @property
    def regression(self) -> bool:
        return self.task.is_regression

    @property
    def n_outputs(self) -> int:
        return 1 if self.regression else len(self.label_names or [])

    def to_dict(self) -> dict:
        out: dict = {"task": self.task, "label_names": self.label_names,
                     "target_mean": self.target_mean, "target_std": self.target_std}
        if self.class_weights is not None:
            out["class_weights"] = self.class_weights
        if self.temperature != 1.0:
            out["temperature"] = self.temperature
        return out


def inverse_frequency(targets, n_classes: int) -> list[float]:
    """Class weights (per residue; of pairs, one array of all targets): total / (classes x
    count), so every class weighs as much in the loss as if the classes were balanced (a class
    with no example gets weight 1)."""
    labels = np.concatenate([t[t != IGNORE_INDEX] for t in targets])
    counts = np.bincount(labels, minlength=n_classes).astype(float)
    weights = np.where(counts > 0, counts.sum() / (n_classes * np.maximum(counts, 1)), 1.0)
    return [round(float(w), 6) for w in weights]


class AttentionPooling(nn.Module):
    """Learned softmax weights over residues."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.score = nn.Linear(hidden, 1)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(states).squeeze(-1).float()
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1).to(states.dtype)
        return torch.einsum("bl,blh->bh", weights, states)


def pool_hidden(states: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                pooling: str, pool: nn.Module | None, eos_id: int) -> torch.Tensor:
    """One vector per sequence: the CLS token, or the (learned-)weighted mean of the residues
    (``<cls>``, ``<eos>`` and padding excluded)."""
    if pooling == "cls":
        return states[:, 0]
    residues = attention_mask.bool() & (input_ids != eos_id)
    residues[:, 0] = False  # <cls>
    if pool is not None:
        return pool(states, residues)
    weights = residues.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def make_head(hidden: int, arch: Architecture, n_outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = hidden
    for _ in range(arch.head_layers):
        layers += [nn.Dropout(arch.dropout), nn.Linear(width, arch.head_width),
                   ACTIVATION_LAYERS[arch.activation]()]
        width = arch.head_width
    layers += [nn.Dropout(arch.dropout), nn.Linear(width, n_outputs)]
    return nn.Sequential(*layers)


class ConvHead(nn.Module):
    """A per-residue head that reads neighbouring residues: a 1-D convolution over the
    sequence (``CONV_KERNEL`` residues), an activation, then a per-residue output layer.
    Padding and the <cls>/<eos> tokens are zeroed first, so they never leak into a residue."""

    def __init__(self, hidden: int, arch: Architecture, n_outputs: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(hidden, arch.head_width, CONV_KERNEL, padding=CONV_KERNEL // 2)
        self.act = ACTIVATION_LAYERS[arch.activation]()
        self.dropout = nn.Dropout(arch.dropout)
        self.out = nn.Linear(arch.head_width, n_outputs)

    def forward(self, states: torch.Tensor) -> torch.Tensor:  # (batch, length, hidden)
        x = self.act(self.conv(states.transpose(1, 2))).transpose(1, 2)
        return self.out(self.dropout(x))


def residue_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 eos_id: int) -> torch.Tensor:
    """True at residues: not <cls>, <eos> or padding."""
    residues = attention_mask.bool() & (input_ids != eos_id)
    residues[:, 0] = False  # <cls>
    return residues


class PooledHead(nn.Module):
    """Pooling + head over residue states: what every candidate puts on top of its backbone.
    For a per-residue task the head reads every residue's state instead (no pooling)."""

    arch: Architecture
    info: TaskInfo
    eos_id: int

    def add_head(self, arch: Architecture, info: TaskInfo, hidden: int, eos_id: int) -> None:
        self.arch, self.info, self.eos_id = arch, info, eos_id
        self.pool = (AttentionPooling(hidden) if arch.pooling == "attention"
                     and not info.per_residue else None)
        width = hidden * PAIR_WIDTH[arch.pair_head] if self.siamese else hidden
        self.head: nn.Module = (ConvHead(hidden, arch, info.n_outputs)
                                if info.per_residue and arch.residue_head == "conv"
                                else make_head(width, arch, info.n_outputs))

    @property
    def siamese(self) -> bool:
        """A pair model whose partners are encoded apart and meet in :meth:`combine`."""
        return self.info.task.per_pair and self.arch.siamese

    def combine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The two partners' pooled vectors as the head reads them: [a + b, |a - b|, a * b]
        (the same for B-A as for A-B) or, order-sensitive, [a, b]."""
        if self.arch.pair_head == "symmetric":
            return torch.cat([a + b, (a - b).abs(), a * b], dim=-1)
        return torch.cat([a, b], dim=-1)

    def pool_states(self, states: torch.Tensor, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor) -> torch.Tensor:
        pooling = "mean" if self.info.per_residue else self.arch.pooling
        return pool_hidden(states, input_ids, attention_mask, pooling, self.pool, self.eos_id)

    def from_states(self, states: torch.Tensor, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, pooled) from the backbone's residue states: one row of logits per
        sequence, or for a per-residue task one per token, (batch, length, outputs), aligned
        with ``input_ids`` (the <cls>, <eos> and padding rows are not used)."""
        pooled = self.pool_states(states, input_ids, attention_mask)
        if not self.info.per_residue:
            return self.head(pooled), pooled
        keep = residue_mask(input_ids, attention_mask, self.eos_id)
        return self.head(states * keep.unsqueeze(-1).to(states.dtype)), pooled


class SequencePredictor(PooledHead):
    """Backbone + pooling + head: one prediction per sequence."""

    compaction: Compaction | None = None  # set when heads / feed-forward width were pruned

    def __init__(self, backbone: nn.Module, arch: Architecture, info: TaskInfo) -> None:
        super().__init__()
        self.esm = backbone
        config: Any = backbone.config  # a transformers config (nn.Module types it loosely)
        eos = config.eos_token_id
        self.add_head(arch, info, config.hidden_size, 2 if eos is None else eos)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.esm(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.pool_states(states, input_ids, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        states = self.esm(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.from_states(states, input_ids, attention_mask)


class HeadModel(PooledHead):
    """Pooling + head of a frozen-backbone candidate, trained on cached representations
    (pooled ones, or per-residue ones for attention pooling).

    Its parameter names are those of the full :class:`SequencePredictor`'s trainable part, so
    its checkpoint rebuilds the full model (backbone + this head) exactly.
    """

    esm = None

    def __init__(self, arch: Architecture, info: TaskInfo, hidden: int, eos_id: int = 2
                 ) -> None:
        super().__init__()
        self.add_head(arch, info, hidden, eos_id)


def init_head(model: nn.Module, seed: int) -> None:
    """Seeded initialisation of the head (and attention pooling): the same trial seed gives
    the same start whether the backbone runs or its cached features are used."""
    generator = torch.Generator().manual_seed(seed)
    for part in (getattr(model, "head", None), getattr(model, "pool", None)):
        if not isinstance(part, nn.Module):
            continue
        for module in part.modules():
            if isinstance(module, nn.Linear):
                with torch.no_grad():
                    nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                    bound = 1 / math.sqrt(module.in_features)
                    module.bias.uniform_(-bound, bound, generator=generator)
