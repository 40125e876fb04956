"""Physically smaller ESM layers: attention heads and feed-forward neurons removed.

Imports only torch, because exported models carry a copy of this file (as
``esm_nas_shapes.py``, beside the bundled modelling file) and rebuild their layers with it.

transformers' ESM attention reshapes its projections to ``(-1, head_size)`` heads, with the
head size taken from the config (``hidden_size / num_attention_heads``); a layer whose query,
key and value projections keep ``k`` head blocks (and whose output projection keeps the matching
input columns) therefore runs ``k`` heads of the original size, unchanged otherwise. The
feed-forward block is ``intermediate.dense`` (rows = neurons) then ``output.dense`` (columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


def keep_rows(layer: nn.Linear, index: torch.Tensor) -> nn.Linear:
    """A copy of ``layer`` with only the output features in ``index``."""
    new = nn.Linear(layer.in_features, len(index), bias=layer.bias is not None)
    new.to(device=layer.weight.device, dtype=layer.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(layer.weight[index])
        if layer.bias is not None:
            new.bias.copy_(layer.bias[index])
    new.weight.requires_grad_(layer.weight.requires_grad)
    if new.bias is not None:
        new.bias.requires_grad_(layer.weight.requires_grad)
    return new


def keep_columns(layer: nn.Linear, index: torch.Tensor) -> nn.Linear:
    """A copy of ``layer`` with only the input features in ``index`` (the bias is kept)."""
    new = nn.Linear(len(index), layer.out_features, bias=layer.bias is not None)
    new.to(device=layer.weight.device, dtype=layer.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(layer.weight[:, index])
        if layer.bias is not None:
            new.bias.copy_(layer.bias)
    new.weight.requires_grad_(layer.weight.requires_grad)
    if new.bias is not None:
        new.bias.requires_grad_(layer.weight.requires_grad)
    return new


def head_size(config) -> int:
    return config.hidden_size // config.num_attention_heads


def prune_layer(layer: Any, head_size: int, heads: Sequence[int] | None = None,
                neurons: Sequence[int] | None = None) -> None:
    """Keep only the attention ``heads`` and feed-forward ``neurons`` given (in place).

    ``None`` keeps all of that kind. At least one head and one neuron must remain."""
    attention = layer.attention
    if heads is not None:
        if len(heads) < 1:
            raise ValueError("keep at least one attention head per layer.")
        heads = sorted(int(h) for h in heads)
        device = attention.self.query.weight.device
        index = torch.cat([torch.arange(h * head_size, (h + 1) * head_size)
                           for h in heads]).to(device)
        for name in ("query", "key", "value"):
            setattr(attention.self, name, keep_rows(getattr(attention.self, name), index))
        attention.output.dense = keep_columns(attention.output.dense, index)
        attention.self.num_attention_heads = len(heads)
        attention.self.all_head_size = len(heads) * head_size
    if neurons is not None:
        if len(neurons) < 1:
            raise ValueError("keep at least one feed-forward neuron per layer.")
        device = layer.intermediate.dense.weight.device
        index = torch.as_tensor(sorted(int(n) for n in neurons), device=device)
        layer.intermediate.dense = keep_rows(layer.intermediate.dense, index)
        layer.output.dense = keep_columns(layer.output.dense, index)


def layer_shapes(encoder_layers) -> tuple[list[int], list[int]]:
    """Heads and feed-forward width of each layer, as they are now."""
    heads, widths = [], []
    for layer in encoder_layers:
        heads.append(int(layer.attention.self.num_attention_heads))
        widths.append(int(layer.intermediate.dense.out_features))
    return heads, widths


def reshape_encoder(esm: Any, heads_per_layer: Sequence[int] | None,
                    ffn_per_layer: Sequence[int] | None) -> None:
    """Give a freshly built ``EsmModel`` the shapes of a compacted one (the first heads and
    neurons are kept; the checkpoint's weights replace them when it is loaded)."""
    config = esm.config
    size = head_size(config)
    layers = esm.encoder.layer
    for i, layer in enumerate(layers):
        heads = None if heads_per_layer is None else range(int(heads_per_layer[i]))
        neurons = None if ffn_per_layer is None else range(int(ffn_per_layer[i]))
        if heads is not None and len(heads) == config.num_attention_heads:
            heads = None
        if neurons is not None and len(neurons) == layer.intermediate.dense.out_features:
            neurons = None
        prune_layer(layer, size, heads, neurons)
