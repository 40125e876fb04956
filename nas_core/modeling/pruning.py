"""Structured pruning of a trained candidate: which attention heads and feed-forward neurons
matter on the user's training data, how many of each to keep, and removing the rest.

Importance is measured on the trained model through a gate on every head's output and every
feed-forward neuron (all gates 1, so the model is unchanged):

- ``taylor`` (Michel et al. 2019, "Are Sixteen Heads Really Better than One?"): the first-order
  Taylor estimate of the loss change when a gate goes to 0, ``|dL/dgate|``, accumulated over
  batches of training sequences and normalised per layer;
- ``activation`` (Muralidharan et al. 2024, NVIDIA Minitron): the mean magnitude of each head's
  output and each neuron's activation over the training tokens (forward passes only).

``benchmarks/run.py compaction`` measures both; the default follows that measurement (README).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from nas_core.common.tasks import Task
from nas_core.modeling.batches import Encoded, forward, length_batches
from nas_core.modeling.compaction_options import DEFAULT_IMPORTANCE, IMPORTANCE
from nas_core.modeling.losses import task_loss
from nas_core.modeling.shapes import head_size, layer_shapes, prune_layer


@dataclass(frozen=True)
class Compaction:
    """What a compacted backbone keeps: heads and feed-forward width per layer."""

    heads: tuple[int, ...]
    ffn: tuple[int, ...]
    heads_before: int  # per layer, in the original backbone
    ffn_before: int
    method: str = DEFAULT_IMPORTANCE

    def __post_init__(self) -> None:
        object.__setattr__(self, "heads", tuple(int(h) for h in self.heads))
        object.__setattr__(self, "ffn", tuple(int(f) for f in self.ffn))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> Compaction | None:
        return None if not data else cls(**data)

    @property
    def n_layers(self) -> int:
        return len(self.heads)

    @property
    def heads_pruned(self) -> bool:
        return any(h != self.heads_before for h in self.heads)

    @property
    def uniform_ffn(self) -> int | None:
        return self.ffn[0] if len(set(self.ffn)) == 1 else None

    def describe(self) -> str:
        def kept(values: tuple[int, ...], before: int, what: str) -> str:
            if len(set(values)) == 1:
                return f"{values[0]:,} of {before:,} {what}"
            return f"{'/'.join(str(v) for v in values)} of {before:,} {what}"

        return (f"{kept(self.heads, self.heads_before, 'attention heads')} and "
                f"{kept(self.ffn, self.ffn_before, 'feed-forward neurons')} in each of its "
                f"{self.n_layers} layers")


def backbone_of(model: Any) -> Any:
    backbone: Any = model.esm
    if hasattr(backbone, "merge_and_unload"):
        raise ValueError("merge the adapters (merge_and_unload) before pruning.")
    return backbone


def for_shares(model: Any, heads_share: float, ffn_share: float,
               method: str = DEFAULT_IMPORTANCE) -> Compaction:
    """Keep ``heads_share`` of the heads and ``ffn_share`` of the neurons in every layer
    (rounded, at least one of each); ``model`` may still carry its adapters."""
    backbone: Any = model.esm
    if hasattr(backbone, "get_base_model"):  # adapters change no shape
        backbone = backbone.get_base_model()
    heads, widths = layer_shapes(backbone.encoder.layer)
    return Compaction(tuple(max(1, round(h * heads_share)) for h in heads),
                      tuple(max(1, round(f * ffn_share)) for f in widths),
                      max(heads), max(widths), method)


def layer_parameters(hidden: int, size: int, heads: int, ffn: int) -> int:
    """Parameters of one ESM layer keeping ``heads`` heads of ``size`` and ``ffn`` neurons."""
    inner = heads * size
    attention = 3 * (hidden * inner + inner) + inner * hidden + hidden + 2 * hidden
    return attention + hidden * ffn + ffn + ffn * hidden + hidden + 2 * hidden


def count_after(model: nn.Module, compaction: Compaction) -> int:
    """The model's parameter count once ``compaction`` is applied (exact)."""
    config = backbone_of(model).config
    size = head_size(config)
    hidden = config.hidden_size
    heads, widths = layer_shapes(backbone_of(model).encoder.layer)
    now = sum(layer_parameters(hidden, size, h, f) for h, f in zip(heads, widths))
    after = sum(layer_parameters(hidden, size, h, f)
                for h, f in zip(compaction.heads, compaction.ffn))
    total = sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
    return total - now + after


def for_target(model: nn.Module, n_parameters: int, method: str = DEFAULT_IMPORTANCE
               ) -> Compaction:
    """The uniform compaction closest to (not above) ``n_parameters``: heads and
    feed-forward width cut by the same share, then the width adjusted to fill the budget
    (multiples of 8 neurons). Raises ValueError when even one head and 8 neurons per layer
    are above the budget."""
    backbone = backbone_of(model)
    config = backbone.config
    size, hidden = head_size(config), config.hidden_size
    heads, widths = layer_shapes(backbone.encoder.layer)
    n_layers, full = len(heads), count_after(model, for_shares(model, 1.0, 1.0, method))
    fixed = full - sum(layer_parameters(hidden, size, h, f) for h, f in zip(heads, widths))
    per_neuron = 2 * hidden + 1

    def width_for(k: int) -> int:
        rest = n_parameters - fixed - n_layers * layer_parameters(hidden, size, k, 0)
        f = rest // (n_layers * per_neuron)
        return int(min(max(widths), f - f % 8 if f >= 8 else f))

    smallest = fixed + n_layers * layer_parameters(hidden, size, 1, 8)
    if n_parameters < smallest:
        raise ValueError(
            f"{n_parameters:,} parameters is below the smallest compaction of this model "
            f"({smallest:,}: one head and 8 feed-forward neurons per layer, "
            f"{smallest / full:.0%} of it); choose a larger target.")
    share = (n_parameters - fixed) / (full - fixed)
    k = max(1, min(max(heads), round(max(heads) * share)))
    while k > 1 and width_for(k) < 8:
        k -= 1
    return Compaction((k,) * n_layers, (width_for(k),) * n_layers, max(heads), max(widths),
                      method)


# -- importance ---------------------------------------------------------------------------
@dataclass
class Gates:
    """A gate per head and per neuron of every layer (1 = unchanged, 0 = removed)."""

    heads: list[torch.Tensor]
    neurons: list[torch.Tensor]


@contextlib.contextmanager
def gated(model: nn.Module, gates: Gates, *, record: Gates | None = None,
          mask: list[torch.Tensor] | None = None) -> Iterator[None]:
    """Multiply every head's output and every neuron's activation by its gate while inside.

    With ``record``, the summed magnitudes of head outputs and neuron activations over the
    tokens in ``mask[0]`` (the current batch's attention mask) are added to it."""
    backbone = backbone_of(model)
    size = head_size(backbone.config)
    handles = []

    def head_hook(i: int):
        def hook(module, args):
            x = args[0]
            shape = x.shape
            split = x.view(*shape[:-1], -1, size)
            if record is not None and mask is not None:
                valid = mask[0].to(split.dtype)[..., None]
                record.heads[i] += (split.detach().norm(dim=-1) * valid).sum((0, 1)).float()
            return ((split * gates.heads[i].to(split.dtype)[:, None]).view(shape),)
        return hook

    def neuron_hook(i: int):
        def hook(module, args):
            x = args[0]
            if record is not None and mask is not None:
                valid = mask[0].to(x.dtype)[..., None]
                record.neurons[i] += (x.detach().abs() * valid).sum((0, 1)).float()
            return (x * gates.neurons[i].to(x.dtype),)
        return hook

    for i, layer in enumerate(backbone.encoder.layer):
        handles.append(layer.attention.output.dense.register_forward_pre_hook(head_hook(i)))
        handles.append(layer.output.dense.register_forward_pre_hook(neuron_hook(i)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def ones_like_layers(model: nn.Module, device: torch.device, *,
                     requires_grad: bool = False) -> Gates:
    heads, widths = layer_shapes(backbone_of(model).encoder.layer)
    return Gates([torch.ones(h, device=device, requires_grad=requires_grad) for h in heads],
                 [torch.ones(f, device=device, requires_grad=requires_grad) for f in widths])


def importance(model: Any, data: Encoded, *, device: torch.device, pad_id: int,
               method: str = DEFAULT_IMPORTANCE, max_sequences: int = 1024,
               batch_size: int = 16, seed: int = 0) -> Gates:
    """Each head's and neuron's importance on (up to ``max_sequences`` of) ``data``, per layer
    normalised to unit L2 norm (Michel et al.); higher is more important."""
    if method not in IMPORTANCE:
        raise ValueError(f"importance must be one of {', '.join(IMPORTANCE)}, not '{method}'.")
    rng = np.random.default_rng(seed)
    rows = np.arange(len(data))
    if len(rows) > max_sequences:
        rows = np.sort(rng.choice(rows, max_sequences, replace=False))
    sub = Encoded([data.ids[i] for i in rows], np.asarray(data.targets)[rows])
    model.to(device).eval()
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    gates = ones_like_layers(model, device, requires_grad=method == "taylor")
    scores = ones_like_layers(model, device)
    for tensor in scores.heads + scores.neurons:
        tensor.zero_()
    current: list[torch.Tensor] = []
    task: Task = model.info.task
    try:
        with gated(model, gates, record=scores if method == "activation" else None,
                   mask=current), torch.set_grad_enabled(method == "taylor"):
            for batch in length_batches(sub.lengths, batch_size):
                current[:] = [_mask(sub, batch, pad_id, device)]
                logits, _ = forward(model, sub, batch, pad_id, device)
                if method != "taylor":
                    continue
                targets = torch.as_tensor(sub.targets[batch], device=device)
                task_loss(task, logits.float(), targets).backward()
                for gate, score in zip(gates.heads + gates.neurons,
                                       scores.heads + scores.neurons):
                    assert gate.grad is not None
                    score += gate.grad.abs()
                    gate.grad = None
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])
    for score in scores.heads + scores.neurons:
        norm = float(score.norm())
        if norm > 0 and math.isfinite(norm):
            score /= norm
    return Gates([s.cpu() for s in scores.heads], [s.cpu() for s in scores.neurons])


def _mask(data: Encoded, batch: np.ndarray, pad_id: int, device: torch.device) -> torch.Tensor:
    width = max(len(data.ids[i]) for i in batch)
    mask = torch.zeros((len(batch), width), device=device)
    for row, i in enumerate(batch):
        mask[row, : len(data.ids[i])] = 1
    return mask


def keep_indices(scores: Sequence[torch.Tensor], counts: Sequence[int]) -> list[list[int]]:
    """The ``counts[i]`` highest-scoring indices of each layer (ties: the lower index)."""
    out = []
    for score, k in zip(scores, counts):
        order = sorted(range(len(score)), key=lambda j: (-float(score[j]), j))
        out.append(sorted(order[:k]))
    return out


def apply(model: nn.Module, compaction: Compaction, scores: Gates) -> dict[str, list]:
    """Remove the least important heads and neurons physically (in place); returns the kept
    indices per layer (for the model card)."""
    backbone = backbone_of(model)
    size = head_size(backbone.config)
    heads = keep_indices(scores.heads, compaction.heads)
    neurons = keep_indices(scores.neurons, compaction.ffn)
    for layer, h, f in zip(backbone.encoder.layer, heads, neurons):
        prune_layer(layer, size, h, f)
    return {"heads": heads, "neurons": neurons}
