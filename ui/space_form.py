"""Widgets for every search-space dimension; help texts come from the dataclass metadata."""

from __future__ import annotations

from dataclasses import fields, replace

import streamlit as st

from nas_core.modeling.architecture import (
    ACTIVATIONS,
    ADAPTATIONS,
    KEPT_SHARES,
    LORA_TARGETS,
    PAIR_HEADS,
    POOLINGS,
    RESIDUE_HEADS,
)
from nas_core.search.space import SearchSpace

_HELP = {f.name: f.metadata.get("help", "") for f in fields(SearchSpace)}
_CHOICES = {"adaptations": ADAPTATIONS, "poolings": POOLINGS, "activations": ACTIVATIONS,
            "lora_targets": LORA_TARGETS, "lora_ranks": (4, 8, 16, 32, 64),
            "lora_alpha_ratios": (0.5, 1.0, 2.0, 4.0), "head_widths": (32, 64, 128, 256, 512),
            "batch_sizes": (4, 8, 16, 32, 64), "heads_kept": KEPT_SHARES,
            "ffn_kept": KEPT_SHARES, "pair_heads": PAIR_HEADS}
_FORMATS = {"heads_kept": "{:.0%}".format, "ffn_kept": "{:.0%}".format,
            "class_weighting": lambda v: "weighted" if v else "unweighted",
            "pair_heads": {"symmetric": "shared encoder, symmetric", "concat": "shared "
                           "encoder, in order", "cross": "cross-encoder (joined)"}.get}
# what only one kind of task samples: per residue a head per residue (no pooling, no
# contrastive loss, no head/width pruning); per sequence the pooling and the rest
_PER_RESIDUE = {"residue_heads": RESIDUE_HEADS, "class_weighting": (False, True)}
_PER_SEQUENCE = ("poolings", "heads_kept", "ffn_kept", "contrastive_weight_range",
                 "temperature_range")
_INT_RANGES = {"finetune_layers_range": (1, 12), "head_layers_range": (0, 2),
               "max_epochs_range": (1, 100)}
_FLOAT_RANGES = {"dropout_range": (0.0, 0.5, 0.05), "lora_dropout_range": (0.0, 0.5, 0.05),
                 "contrastive_weight_range": (0.0, 1.0, 0.05),
                 "temperature_range": (0.01, 1.0, 0.01)}
_LOG_RANGES = {"lr_range": (1e-6, 1e-1), "weight_decay_range": (1e-8, 1.0)}


def _title(name: str) -> str:
    return name.replace("_range", "").replace("_", " ").capitalize()


# The Advanced settings in groups, each with one sentence (the search strategy's own group is
# on the Search page): every field of SearchSpace a page may edit appears in one of them
GROUPS = (
    ("Backbone and size", "How much of each backbone a model keeps: fewer layers, fewer "
     "attention heads or a narrower feed-forward block make it smaller and faster.",
     ("layers_cap", "max_parameters", "heads_kept", "ffn_kept")),
    ("Adaptation", "How the backbone learns your task: frozen (only the head trains), "
     "adapters (LoRA, DoRA, IA3), or fine-tuning some or all of its layers.",
     ("adaptations", "lora_ranks", "lora_alpha_ratios", "lora_targets", "lora_dropout_range",
      "finetune_layers_range")),
    ("Head", "What turns the backbone's residue embeddings into your label.",
     ("pair_heads", "poolings", "residue_heads", "class_weighting", "head_layers_range",
      "head_widths",
      "activations", "dropout_range", "contrastive_weight_range", "temperature_range")),
    ("Training", "How each architecture is trained.",
     ("lr_range", "weight_decay_range", "batch_sizes", "max_epochs_range")),
)


def space_editor(space: SearchSpace, key: str = "adv", per_residue: bool = False,
                 pairs: bool = False) -> SearchSpace:
    """Show the editor (the dimensions the dataset's kind of task samples), in groups; return
    the edited space (raises ValueError for an invalid one)."""
    changes: dict = {}
    for title, sentence, names in GROUPS:
        shown = [n for n in names if _applies(n, per_residue, pairs)]
        st.markdown(f"**{title}**")
        st.caption(sentence)
        cols = st.columns(3)
        for i, name in enumerate(shown):
            _widget(cols[i % 3], space, name, key, changes)
    layers_cap = changes.pop("layers_cap")
    changes["layers_range"] = (1, int(layers_cap)) if layers_cap else None
    return replace(space, **changes)


def _applies(name: str, per_residue: bool, pairs: bool = False) -> bool:
    if name == "pair_heads":
        return pairs
    if name == "class_weighting":  # rare residue classes, rare interacting pairs
        return per_residue or pairs
    if name in _PER_RESIDUE:
        return per_residue
    return not (per_residue and name in _PER_SEQUENCE)


def _widget(col, space: SearchSpace, name: str, key: str, changes: dict) -> None:
    """The widget of one dimension, its value into ``changes``."""
    if name == "layers_cap":
        changes[name] = col.number_input(
            "Keep at most this many layers (0 = no limit)", 0, 48,
            space.layers_range[1] if space.layers_range else 0, key=f"{key}_max_layers",
            help=_HELP["layers_range"])
    elif name == "max_parameters":
        millions = col.number_input(
            "At most this many parameters, in millions (0 = no limit)", 0.0, 5000.0,
            (space.max_parameters or 0) / 1e6, step=1.0, key=f"{key}_max_params",
            help=_HELP["max_parameters"])
        changes[name] = int(millions * 1e6) if millions else None
    elif name in _CHOICES or name in _PER_RESIDUE:
        choices = {**_CHOICES, **_PER_RESIDUE}[name]
        current = [v for v in getattr(space, name) if v in choices]
        changes[name] = tuple(col.multiselect(
            _title(name), choices, default=current, key=f"{key}_{name}", help=_HELP[name],
            format_func=_FORMATS.get(name, str)))
    elif name in _INT_RANGES:
        low, high = _INT_RANGES[name]
        lo, hi = getattr(space, name)
        changes[name] = col.slider(_title(name), low, high, (lo, hi), key=f"{key}_{name}",
                                   help=_HELP[name])
    elif name in _FLOAT_RANGES:
        f_low, f_high, step = _FLOAT_RANGES[name]
        lo, hi = getattr(space, name)
        changes[name] = col.slider(_title(name), f_low, f_high, (float(lo), float(hi)),
                                   step=step, key=f"{key}_{name}", help=_HELP[name])
    else:
        log_low, log_high = _LOG_RANGES[name]
        lo, hi = getattr(space, name)
        c1, c2 = col.columns(2)
        changes[name] = (
            c1.number_input(f"{_title(name)} from", log_low, log_high, float(lo),
                            format="%.1e", key=f"{key}_{name}_lo", help=_HELP[name]),
            c2.number_input("to", log_low, log_high, float(hi), format="%.1e",
                            key=f"{key}_{name}_hi"))
