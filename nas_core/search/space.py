"""The architecture search space: typed, serialisable, narrowable dimension by dimension.

A dimension given as a tuple of choices is categorical; a ``(low, high)`` pair named ``*_range``
is numeric. One choice, or ``low == high``, pins the dimension."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from nas_core.backbones.registry import BackboneSpec, resolve
from nas_core.common.records import help_text
from nas_core.common.tasks import Task
from nas_core.modeling.architecture import (
    ACTIVATIONS,
    ADAPTATIONS,
    LORA_LIKE,
    LORA_TARGETS,
    PAIR_HEADS,
    POOLINGS,
    RESIDUE_HEADS,
    Architecture,
)


@dataclass(frozen=True)
class SearchSpace:
    """Which architectures the search may try."""

    backbones: tuple[str, ...] = field(default=("esm2_t6_8M", "esm2_t12_35M"), metadata=help_text(
        "ESM-2 checkpoints to choose from (registry names or local checkpoint directories)."))
    layers_range: tuple[int, int] | None = field(default=None, metadata=help_text(
        "Transformer layers to keep (1..L of each backbone); compact variants cut the rest."))
    max_parameters: int | None = field(default=None, metadata=help_text(
        "Upper bound on the model's parameters: deeper cuts or larger backbones are skipped."))
    adaptations: tuple[str, ...] = field(default=ADAPTATIONS, metadata=help_text(
        "frozen: train only the head; lora: low-rank adapters; dora: LoRA with a learned "
        "magnitude per weight column; ia3: learned rescaling of keys, values and feed-forward "
        "activations (fewest trained parameters); partial: fine-tune the top layers; full: "
        "fine-tune every kept layer. Adapters are merged into plain weights on export."))
    lora_ranks: tuple[int, ...] = field(default=(4, 8, 16, 32), metadata=help_text("LoRA rank r."))
    lora_alpha_ratios: tuple[float, ...] = field(default=(1.0, 2.0), metadata=help_text(
        "LoRA alpha as a multiple of the rank."))
    lora_dropout_range: tuple[float, float] = field(default=(0.0, 0.2), metadata=help_text(
        "Dropout on the LoRA path."))
    lora_targets: tuple[str, ...] = field(default=LORA_TARGETS, metadata=help_text(
        "Modules that get adapters."))
    heads_kept: tuple[float, ...] = field(default=(1.0, 0.75, 0.5), metadata=help_text(
        "Share of each layer's attention heads kept (1 = all). Below 1 the trained model's "
        "least important heads are removed and the smaller model recovers by distillation "
        "from the unpruned one. Trained backbones only (not frozen ones); the trial then "
        "trains twice, teacher and student."))
    ffn_kept: tuple[float, ...] = field(default=(1.0, 0.75, 0.5, 0.25), metadata=help_text(
        "Share of each layer's feed-forward (intermediate) width kept (1 = all); pruned and "
        "recovered like the heads."))
    finetune_layers_range: tuple[int, int] = field(default=(1, 4), metadata=help_text(
        "Partial fine-tuning: how many of the top kept layers are trained."))
    poolings: tuple[str, ...] = field(default=POOLINGS, metadata=help_text(
        "How residue embeddings become one vector: mean, the CLS token, or learned attention."))
    head_layers_range: tuple[int, int] = field(default=(0, 2), metadata=help_text(
        "Hidden layers of the prediction head."))
    head_widths: tuple[int, ...] = field(default=(64, 128, 256), metadata=help_text(
        "Width of the head's hidden layers."))
    activations: tuple[str, ...] = field(default=("gelu", "relu"), metadata=help_text(
        "Activation of the head's hidden layers."))
    dropout_range: tuple[float, float] = field(default=(0.0, 0.3),
                                               metadata=help_text("Head dropout."))
    lr_range: tuple[float, float] = field(default=(1e-5, 3e-3), metadata=help_text(
        "Learning rate (searched on a log scale)."))
    weight_decay_range: tuple[float, float] = field(default=(1e-6, 1e-1), metadata=help_text(
        "AdamW weight decay (log scale)."))
    batch_sizes: tuple[int, ...] = field(default=(8, 16, 32), metadata=help_text(
        "Sequences per batch."))
    max_epochs_range: tuple[int, int] = field(default=(10, 10), metadata=help_text(
        "Most epochs a trial trains (early stopping may end it sooner)."))
    contrastive_weight_range: tuple[float, float] = field(default=(0.0, 1.0), metadata=help_text(
        "Weight lambda of a supervised contrastive loss on pooled embeddings; 0 switches it "
        "off."))
    temperature_range: tuple[float, float] = field(default=(0.05, 0.5), metadata=help_text(
        "Temperature of the contrastive loss."))
    residue_heads: tuple[str, ...] = field(default=RESIDUE_HEADS, metadata=help_text(
        "Per-residue tasks: dense reads each residue's representation alone (linear, or the "
        "hidden layers above); conv also reads its neighbours (a convolution over 7 residues, "
        "head_widths channels). Pooling and the contrastive loss do not apply per residue."))
    class_weighting: tuple[bool, ...] = field(default=(False, True), metadata=help_text(
        "Per-residue and pair classification: weigh each class by its inverse frequency in "
        "the loss, so rare classes (binding sites, modified lysines, interacting pairs) are "
        "not ignored."))
    pair_heads: tuple[str, ...] = field(default=PAIR_HEADS, metadata=help_text(
        "Pairs of proteins: symmetric encodes each partner with the shared backbone and "
        "combines them as [a+b, |a-b|, a*b] (A-B scores as B-A); concat as [a, b] (order "
        "matters: bait and prey); cross reads both joined by 25 glycines (attention between "
        "the partners, twice the length, order-sensitive). Frozen symmetric and concat trials "
        "encode each protein once, whatever number of pairs it is in."))

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        if not self.backbones:
            raise ValueError("choose at least one backbone.")
        for name, allowed in (("adaptations", ADAPTATIONS), ("poolings", POOLINGS),
                              ("activations", ACTIVATIONS), ("lora_targets", LORA_TARGETS),
                              ("residue_heads", RESIDUE_HEADS), ("pair_heads", PAIR_HEADS),
                              ("class_weighting", (False, True))):
            values = getattr(self, name)
            words = ", ".join(map(str, allowed))
            if not values:
                raise ValueError(f"{name}: choose at least one of {words}.")
            bad = [v for v in values if v not in allowed]
            if bad:
                raise ValueError(f"{name}: {bad} not allowed; choose from {words}.")
        for name in ("heads_kept", "ffn_kept"):
            values = getattr(self, name)
            if not values or any(not 0.05 <= v <= 1.0 for v in values):
                raise ValueError(f"{name}: shares between 0.05 and 1 (1 keeps everything), "
                                 f"got {values}.")
        for name in ("lora_ranks", "lora_alpha_ratios", "head_widths", "batch_sizes"):
            values = getattr(self, name)
            if not values or any(v <= 0 for v in values):
                raise ValueError(f"{name} needs positive values, got {values}.")
        for f in fields(self):
            if f.name.endswith("_range") and getattr(self, f.name) is not None:
                low, high = getattr(self, f.name)
                if low > high:
                    raise ValueError(f"{f.name}: low {low} is above high {high}.")
                if low < 0:
                    raise ValueError(f"{f.name}: values must not be negative.")
        if self.layers_range and self.layers_range[0] < 1:
            raise ValueError("layers_range: keep at least 1 layer.")
        if self.finetune_layers_range[0] < 1:
            raise ValueError("finetune_layers_range: fine-tune at least 1 layer.")
        if self.max_epochs_range[0] < 1:
            raise ValueError("max_epochs_range: at least 1 epoch.")
        if self.lr_range[0] <= 0 or self.weight_decay_range[0] <= 0:
            raise ValueError("lr_range and weight_decay_range are log scales: low must be > 0.")
        if self.contrastive_weight_range[1] > 1:
            raise ValueError("contrastive_weight_range: lambda lies in [0, 1].")

    # -- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> SearchSpace:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown search-space field(s): {', '.join(sorted(unknown))}.")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in data.items()}
        return cls(**values)

    # -- what the dimensions mean for each backbone ----------------------------------------
    def depth_bounds(self, spec: BackboneSpec) -> tuple[int, int] | None:
        """Allowed kept-layer range for ``spec``, or None if no depth fits the budget."""
        low, high = self.layers_range or (1, spec.layers)
        low, high = max(1, low), min(spec.layers, high)
        if self.max_parameters is not None:
            while high >= low and spec.parameters_at_depth(high) > self.max_parameters:
                high -= 1
        return (low, high) if low <= high else None

    def usable_backbones(self) -> dict[str, BackboneSpec]:
        """Backbones with at least one allowed depth; raises if none is left."""
        specs = {name: resolve(name) for name in self.backbones}
        usable = {name: spec for name, spec in specs.items() if self.depth_bounds(spec)}
        if not usable:
            raise ValueError(
                "no backbone fits the limits: with at most "
                f"{self.max_parameters:,} parameters and layers {self.layers_range}, even one "
                "layer of each backbone is too large. Raise the limit or add a smaller backbone.")
        return usable


def _cat(trial, name, choices):
    return choices[0] if len(choices) == 1 else trial.suggest_categorical(name, list(choices))


def _int(trial, name, bounds):
    low, high = bounds
    return low if low == high else trial.suggest_int(name, low, high)


def _float(trial, name, bounds, log=False):
    low, high = bounds
    return float(low) if low == high else trial.suggest_float(name, low, high, log=log)


def param_key(backbone: str) -> str:
    return resolve(backbone).name


def suggest_architecture(trial, space: SearchSpace, task: Task = Task.BINARY) -> Architecture:
    """Sample an architecture with Optuna's define-by-run API.

    Conditional dimensions get their own parameter names (``n_layers_<backbone>``) so each
    parameter keeps one fixed distribution, as Optuna's samplers require. A per-residue
    ``task`` samples the residue head (and class weights) instead of pooling and the
    contrastive loss, and keeps every head and feed-forward neuron (compaction distils
    pooled sequence outputs).
    """
    per_residue = task.per_residue
    usable = space.usable_backbones()
    backbone = _cat(trial, "backbone", tuple(usable))
    spec = usable[backbone]
    n_layers = _int(trial, f"n_layers_{param_key(backbone)}", space.depth_bounds(spec))
    adaptation = _cat(trial, "adaptation", space.adaptations)
    kw: dict = {}
    if adaptation in LORA_LIKE:
        rank = _cat(trial, "lora_rank", space.lora_ranks)
        kw.update(lora_rank=rank,
                  lora_alpha=rank * _cat(trial, "lora_alpha_ratio", space.lora_alpha_ratios),
                  lora_dropout=_float(trial, "lora_dropout", space.lora_dropout_range),
                  lora_targets=_cat(trial, "lora_targets", space.lora_targets))
    elif adaptation == "partial":
        kw["finetune_layers"] = min(n_layers, _int(trial, "finetune_layers",
                                                   space.finetune_layers_range))
    if task.per_pair:
        kw["pair_head"] = _cat(trial, "pair_head", space.pair_heads)
        if task.is_classification:
            kw["class_weighted"] = _cat(trial, "class_weighted", space.class_weighting)
    # a frozen backbone: nothing to distil; a siamese pair model distils no single sequence
    if adaptation != "frozen" and not per_residue and kw.get("pair_head", "cross") == "cross":
        kw.update(heads_kept=_cat(trial, "heads_kept", space.heads_kept),
                  ffn_kept=_cat(trial, "ffn_kept", space.ffn_kept))
    if per_residue:
        kw["residue_head"] = _cat(trial, "residue_head", space.residue_heads)
        if task == Task.RESIDUE_CLASSIFICATION:
            kw["class_weighted"] = _cat(trial, "class_weighted", space.class_weighting)
    head_layers = (0 if kw.get("residue_head") == "conv"
                   else _int(trial, "head_layers", space.head_layers_range))
    if head_layers > 0 or kw.get("residue_head") == "conv":
        kw.update(head_width=_cat(trial, "head_width", space.head_widths),
                  activation=_cat(trial, "activation", space.activations))
    low, high = space.contrastive_weight_range
    weight = 0.0
    if high > 0 and not per_residue:
        use = True if low > 0 else _cat(trial, "contrastive", (False, True))
        if use:
            weight = _float(trial, "contrastive_weight", (max(low, 0.05), high))
            kw["temperature"] = _float(trial, "temperature", space.temperature_range, log=True)
    return Architecture(
        backbone=backbone, n_layers=n_layers, adaptation=adaptation,
        pooling="mean" if per_residue else _cat(trial, "pooling", space.poolings),
        head_layers=head_layers,
        dropout=_float(trial, "dropout", space.dropout_range),
        lr=_float(trial, "lr", space.lr_range, log=True),
        weight_decay=_float(trial, "weight_decay", space.weight_decay_range, log=True),
        batch_size=_cat(trial, "batch_size", space.batch_sizes),
        max_epochs=_int(trial, "max_epochs", space.max_epochs_range),
        contrastive_weight=weight, **kw,
    )
