"""Widgets for every search-space dimension; help texts come from the dataclass metadata."""

from __future__ import annotations

from dataclasses import fields, replace

import streamlit as st

from nas_core.modeling.architecture import (
    ACTIVATIONS,
    ADAPTATIONS,
    KEPT_SHARES,
    LORA_TARGETS,
    POOLINGS,
    RESIDUE_HEADS,
)
from nas_core.search.space import SearchSpace

_HELP = {f.name: f.metadata.get("help", "") for f in fields(SearchSpace)}
_CHOICES = {"adaptations": ADAPTATIONS, "poolings": POOLINGS, "activations": ACTIVATIONS,
            "lora_targets": LORA_TARGETS, "lora_ranks": (4, 8, 16, 32, 64),
            "lora_alpha_ratios": (0.5, 1.0, 2.0, 4.0), "head_widths": (32, 64, 128, 256, 512),
            "batch_sizes": (4, 8, 16, 32, 64), "heads_kept": KEPT_SHARES,
            "ffn_kept": KEPT_SHARES}
_FORMATS = {"heads_kept": "{:.0%}".format, "ffn_kept": "{:.0%}".format,
            "class_weighting": lambda v: "weighted" if v else "unweighted"}
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


def space_editor(space: SearchSpace, key: str = "adv", per_residue: bool = False
                 ) -> SearchSpace:
    """Show the editor (the dimensions the dataset's kind of task samples); return the edited
    space (raises ValueError for an invalid one)."""
    changes: dict = {}
    cols = st.columns(3)
    i = 0
    shown = {**_CHOICES, **(_PER_RESIDUE if per_residue else {})}
    for name, choices in shown.items():
        if per_residue and name in _PER_SEQUENCE:
            continue
        current = [v for v in getattr(space, name) if v in choices]
        changes[name] = tuple(cols[i % 3].multiselect(
            _title(name), choices, default=current, key=f"{key}_{name}", help=_HELP[name],
            format_func=_FORMATS.get(name, str)))
        i += 1
    for name, (low, high) in _INT_RANGES.items():
        lo, hi = getattr(space, name)
        changes[name] = cols[i % 3].slider(_title(name), low, high, (lo, hi),
                                           key=f"{key}_{name}", help=_HELP[name])
        i += 1
    for name, (f_low, f_high, step) in _FLOAT_RANGES.items():
        if per_residue and name in _PER_SEQUENCE:
            continue
        lo, hi = getattr(space, name)
        changes[name] = cols[i % 3].slider(_title(name), f_low, f_high, (float(lo), float(hi)),
                                           step=step, key=f"{key}_{name}", help=_HELP[name])
        i += 1
    for name, (log_low, log_high) in _LOG_RANGES.items():
        lo, hi = getattr(space, name)
        c1, c2 = cols[i % 3].columns(2)
        changes[name] = (
            c1.number_input(f"{_title(name)} from", log_low, log_high, float(lo), format="%.1e",
                            key=f"{key}_{name}_lo", help=_HELP[name]),
            c2.number_input("to", log_low, log_high, float(hi), format="%.1e",
                            key=f"{key}_{name}_hi"))
        i += 1
    layers_cap = st.number_input(
        "Keep at most this many layers (0 = no limit)", 0, 48,
        space.layers_range[1] if space.layers_range else 0, key=f"{key}_max_layers",
        help=_HELP["layers_range"])
    max_params = st.number_input(
        "At most this many parameters, in millions (0 = no limit)", 0.0, 5000.0,
        (space.max_parameters or 0) / 1e6, step=1.0, key=f"{key}_max_params",
        help=_HELP["max_parameters"])
    changes["layers_range"] = (1, int(layers_cap)) if layers_cap else None
    changes["max_parameters"] = int(max_params * 1e6) if max_params else None
    return replace(space, **changes)
