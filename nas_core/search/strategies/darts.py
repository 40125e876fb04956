"""Gradient-based one-shot search (DARTS-style) over what a frozen ESM-2 can offer a head.

One super-network is trained once on the cached per-layer representations of the frozen
backbone: a softmax mix over every layer's representation (which depth to keep), over the
poolings (mean, CLS) and over the candidate head operations (linear, or hidden layers of each
width and activation). Network weights step on training batches and the architecture weights on
validation batches, alternately (first-order DARTS, Liu et al. 2019). The strongest choices
give the discrete architecture, which then runs as an ordinary trial of the study: trained,
evaluated, stored, exported like every other. The architecture weights of every epoch are kept
in the study (``darts`` user attribute) for the Monitor's chart and for a resume.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import optuna
import torch
from torch import nn

from nas_core.backbones.registry import resolve
from nas_core.common.metric_names import IGNORE_INDEX
from nas_core.common.tasks import Task
from nas_core.data.dataset import Dataset
from nas_core.modeling.batches import EVAL_MAX_TOKENS
from nas_core.modeling.cache import POOLINGS, RepresentationCache
from nas_core.modeling.modules import ACTIVATION_LAYERS
from nas_core.modeling.training import resolve_device
from nas_core.search.objective import SearchData
from nas_core.search.space import SearchSpace, param_key

DARTS_ATTR = "darts"
LIVE_ATTR = "darts_live"  # the super-network's weights while it trains
ONE_SHOT_POOLINGS = ("mean", "cls")  # attention pooling needs per-residue states: not mixed
PER_RESIDUE = "per residue"  # a per-residue task's only "pooling": the token head's input
MAX_RESIDUES = 40_000  # labelled residues per split the per-residue super-network trains on


@dataclass(frozen=True)
class HeadOp:
    layers: int
    width: int = 0
    activation: str = "gelu"

    @property
    def name(self) -> str:
        return "linear" if self.layers == 0 else f"{self.layers}x{self.width} {self.activation}"


def head_ops(space: SearchSpace) -> list[HeadOp]:
    low, high = space.head_layers_range
    ops = []
    for layers in range(low, high + 1):
        if layers == 0:
            ops.append(HeadOp(0))
        else:
            ops += [HeadOp(layers, w, a) for w, a in itertools.product(space.head_widths,
                                                                       space.activations)]
    return ops


def _build(op: HeadOp, hidden: int, out: int) -> nn.Module:
    layers, width = [], hidden
    for _ in range(op.layers):
        layers += [nn.Linear(width, op.width), ACTIVATION_LAYERS[op.activation]()]
        width = op.width
    return nn.Sequential(*layers, nn.Linear(width, out))


class SuperNet(nn.Module):
    def __init__(self, n_pool: int, n_depth: int, hidden: int, ops: list[HeadOp], out: int):
        super().__init__()
        self.alpha_depth = nn.Parameter(torch.zeros(n_depth))
        self.alpha_pool = nn.Parameter(torch.zeros(n_pool))
        self.alpha_head = nn.Parameter(torch.zeros(len(ops)))
        self.ops = nn.ModuleList(_build(op, hidden, out) for op in ops)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha_depth, self.alpha_pool, self.alpha_head]

    def weights(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("alpha_")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, pool, depth, hidden)
        mixed = torch.einsum("bpdh,p,d->bh", x, self.alpha_pool.softmax(0),
                             self.alpha_depth.softmax(0))
        mix = self.alpha_head.softmax(0)
        return sum(w * op(mixed) for w, op in zip(mix, self.ops))


@dataclass
class OneShot:
    depths: list[int]
    poolings: list[str]
    ops: list[HeadOp]
    history: list[dict]  # {epoch, group, choice, weight}
    depth_weights: np.ndarray
    pool_weights: np.ndarray
    head_weights: np.ndarray
    val_loss: float

    def ranked(self, k: int) -> list[tuple[int, str, HeadOp]]:
        """The ``k`` most probable discrete architectures under the architecture weights."""
        combos = itertools.product(range(len(self.depths)), range(len(self.poolings)),
                                   range(len(self.ops)))
        scored = sorted(combos, key=lambda c: -(self.depth_weights[c[0]] *
                                                self.pool_weights[c[1]] *
                                                self.head_weights[c[2]]))
        return [(self.depths[d], self.poolings[p], self.ops[o]) for d, p, o in scored[:k]]


def _standardised(features: np.ndarray, n_train: int, device: torch.device) -> torch.Tensor:
    """Layers differ in scale: standardise on the training rows to mix them on equal terms."""
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    mean = x[:n_train].mean(0, keepdim=True)
    std = x[:n_train].std(0, keepdim=True) + 1e-5
    return ((x - mean) / std).to(device)


def _weights_rows(net: SuperNet, epoch: int, depths: list[int], poolings: list[str],
                  ops: list[HeadOp]) -> list[dict]:
    """The architecture weights after ``epoch``, one row per choice (the Monitor's chart)."""
    rows = []
    for group, alpha, names in (("depth", net.alpha_depth, [str(d) for d in depths]),
                                ("pooling", net.alpha_pool, poolings),
                                ("head", net.alpha_head, [op.name for op in ops])):
        for name, weight in zip(names, alpha.detach().softmax(0).cpu().tolist()):
            rows.append({"epoch": epoch, "group": group, "choice": name, "weight": weight})
    return rows


def search(features: np.ndarray, y_train: np.ndarray, y_val: np.ndarray, n_train: int, *,
           task: Task, n_classes: int, depths: list[int], poolings: list[str],
           ops: list[HeadOp], epochs: int = 40, batch_size: int = 64, lr: float = 3e-3,
           arch_lr: float = 3e-2, seed: int = 0, device: torch.device | None = None,
           on_epoch=None) -> OneShot:
    """``features``: (N, pool, depth, hidden) for train rows then validation rows;
    ``on_epoch(history)`` after every epoch (live progress)."""
    device = device or torch.device("cpu")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = _standardised(features, n_train, device)
    regression = task.label_kind == Task.REGRESSION
    y = torch.as_tensor(np.concatenate([y_train, y_val]),
                        dtype=torch.float32 if regression else torch.long).to(device)
    net = SuperNet(len(poolings), len(depths), x.shape[-1], ops,
                   1 if regression else n_classes).to(device)
    weight_opt = torch.optim.AdamW(net.weights(), lr=lr, weight_decay=1e-4)
    arch_opt = torch.optim.Adam(net.arch_parameters(), lr=arch_lr, betas=(0.5, 0.999))

    def loss_of(idx: np.ndarray) -> torch.Tensor:
        out = net(x[idx])
        return nn.functional.mse_loss(out.squeeze(-1), y[idx]) if regression else \
            nn.functional.cross_entropy(out, y[idx])

    def step(optimizer: torch.optim.Optimizer, idx: np.ndarray) -> None:
        optimizer.zero_grad()
        loss_of(idx).backward()
        optimizer.step()

    train_idx, val_idx = np.arange(n_train), np.arange(n_train, len(x))
    history: list[dict] = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(train_idx)
        val_order = rng.permutation(val_idx)
        # first-order DARTS: weights on a training batch, then architecture on a validation one
        for i, start in enumerate(range(0, len(order), batch_size)):
            step(weight_opt, order[start:start + batch_size])
            v = val_order[(i * batch_size) % len(val_order):][:batch_size]
            step(arch_opt, v if len(v) else val_order[:batch_size])
        history += _weights_rows(net, epoch, depths, poolings, ops)
        if on_epoch is not None:
            on_epoch(history)
    with torch.no_grad():
        val_loss = float(loss_of(val_idx))
    return OneShot(depths, poolings, ops, history,
                   net.alpha_depth.detach().softmax(0).cpu().numpy(),
                   net.alpha_pool.detach().softmax(0).cpu().numpy(),
                   net.alpha_head.detach().softmax(0).cpu().numpy(), val_loss)


def prepare(study: optuna.Study, config, dataset: Dataset, root=None) -> None:
    """Run the one-shot search for every allowed backbone (on its cached representations),
    record the architecture weights in the study, and queue the derived architectures (best
    first) as the study's trials. Skipped on a resume: the study already has them."""
    data = SearchData.from_dataset(dataset)
    results = [(name, _one_shot(study, config, data, name, root))
               for name in config.space.usable_backbones()]
    name, best = min(results, key=lambda r: r[1].val_loss)
    wanted = config.n_trials or 1
    _queue_derived(study, config.space, name, best.ranked(wanted), many_depths=len(
        best.depths) > 1)
    study.set_user_attr(DARTS_ATTR, {
        "backbone": resolve(name).label, "history": best.history,
        "val_loss": best.val_loss if math.isfinite(best.val_loss) else None,
        "derived": [{"depth": d, "pooling": p, "head": o.name}
                    for d, p, o in best.ranked(wanted)]})


def _one_shot(study: optuna.Study, config, data: SearchData, backbone: str, root) -> OneShot:
    """The super-network of one backbone, trained on its cached pooled representations; its
    weights are published to the study after every epoch (the Monitor redraws from them)."""
    space: SearchSpace = config.space
    device = resolve_device(config.device)
    bounds = space.depth_bounds(resolve(backbone))
    assert bounds is not None  # usable_backbones() left only backbones with a depth
    low, high = bounds
    depths = list(range(low, high + 1))
    cache = RepresentationCache(root)
    max_tokens = config.max_tokens or EVAL_MAX_TOKENS
    info = data.info
    # validation targets are in the label's units; the network learns standardised values
    y_val = info.standardise(data.val_targets)
    if info.per_residue:  # one row per labelled residue, the token head's input
        poolings = [PER_RESIDUE]
        features, y_train, y_val, n_train = _residue_rows(
            cache, backbone, data, y_val, depths, device=device, max_tokens=max_tokens,
            seed=config.seed)
    else:
        poolings = [p for p in ONE_SHOT_POOLINGS if p in space.poolings] or ["mean"]
        pooled = cache.pooled(backbone, data.train_sequences + data.val_sequences, depths,
                              device=device, max_tokens=max_tokens)
        features = np.stack([np.stack([np.asarray(pooled[(p, d)]) for d in depths], 1)
                             for p in poolings], 1)  # (N, pool, depth, hidden)
        y_train, n_train = data.train_targets, len(data.train_sequences)
    label = resolve(backbone).label

    def publish(history: list[dict]) -> None:
        study.set_user_attr(LIVE_ATTR, {"backbone": label, "history": history})

    return search(features, y_train, y_val, n_train,
                  task=Task.REGRESSION if info.regression else Task.MULTICLASS,
                  n_classes=len(info.label_names or [1]), depths=depths, poolings=poolings,
                  ops=head_ops(space), seed=config.seed, device=device, on_epoch=publish)


def _residue_rows(cache: RepresentationCache, backbone: str, data: SearchData,
                  y_val: np.ndarray, depths: list[int], *, device: torch.device,
                  max_tokens: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Per-layer representations of labelled residues, (N, 1, depth, hidden), training rows
    first (at most ``MAX_RESIDUES`` of each split, drawn with the seed), and their targets."""
    sequences = data.train_sequences + data.val_sequences
    targets = list(data.train_targets) + list(y_val)
    _, offsets = cache.residues(backbone, sequences, depths[0], device=device,
                                max_tokens=max_tokens)
    rows, values, train = [], [], []
    for i, target in enumerate(targets):
        target = np.asarray(target)
        known = np.flatnonzero(np.isfinite(target) if target.dtype.kind == "f"
                               else target != IGNORE_INDEX)
        rows.append(offsets[i] + 1 + known)  # residue j is token j + 1, after <cls>
        values.append(target[known])
        train.append(np.full(len(known), i < len(data.train_sequences)))
    row, value, is_train = np.concatenate(rows), np.concatenate(values), np.concatenate(train)
    rng = np.random.default_rng(seed)
    picks = []
    for part in (is_train, ~is_train):
        index = np.flatnonzero(part)
        picks.append(np.sort(rng.choice(index, min(len(index), MAX_RESIDUES), replace=False)))
    order = np.concatenate(picks)
    features = np.stack([np.asarray(cache.residues(backbone, sequences, d, device=device,
                                                   max_tokens=max_tokens)[0])[row[order]]
                         for d in depths], 1)[:, None]
    return features, value[picks[0]], value[picks[1]], len(picks[0])


def _queue_derived(study: optuna.Study, space: SearchSpace, backbone: str,
                   ranked: list[tuple[int, str, HeadOp]], *, many_depths: bool) -> None:
    """The derived architectures as the study's next trials, best first."""
    lr = float(np.clip(1e-3, *space.lr_range))
    adaptation = "frozen" if "frozen" in space.adaptations else space.adaptations[0]
    for depth, pooling, op in ranked:
        params = {"backbone": backbone, "adaptation": adaptation, "head_layers": op.layers,
                  "lr": lr}
        if pooling == PER_RESIDUE:  # the one-shot mixes dense heads over residues
            params["residue_head"] = "dense"
        else:
            params["pooling"] = pooling
        if many_depths:
            params[f"n_layers_{param_key(backbone)}"] = depth
        if op.layers:
            params.update(head_width=op.width, activation=op.activation)
        study.enqueue_trial({k: v for k, v in params.items() if _in_space(k, v, space)},
                            user_attrs={"derived_by": "darts"})


def _in_space(key: str, value, space: SearchSpace) -> bool:
    """Only parameters the search space actually samples (a pinned dimension has none)."""
    single = {"adaptation": space.adaptations, "pooling": space.poolings,
              "head_width": space.head_widths, "activation": space.activations,
              "residue_head": space.residue_heads}
    if key in single:
        return len(single[key]) > 1
    if key == "head_layers":
        return space.head_layers_range[0] != space.head_layers_range[1]
    if key == "lr":
        return space.lr_range[0] != space.lr_range[1]
    if key == "backbone":
        return len(space.usable_backbones()) > 1
    return True


__all__ = ["DARTS_ATTR", "OneShot", "POOLINGS", "head_ops", "prepare", "search"]
