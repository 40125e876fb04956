"""Losses: the task loss, the supervised contrastive term, and the MAE shown in the curves."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nas_core.common.metric_names import IGNORE_INDEX
from nas_core.common.tasks import Task


# -- losses -------------------------------------------------------------------------------
def supervised_contrastive(embeddings: torch.Tensor, groups: torch.Tensor,
                           temperature: float) -> torch.Tensor:
    """SupCon (Khosla et al. 2020): pull same-group embeddings together, push others apart."""
    z = F.normalize(embeddings.float(), dim=-1)
    logits = z @ z.T / temperature
    n = len(z)
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, -1e9)
    positives = (groups[:, None] == groups[None, :]) & ~self_mask
    has_pos = positives.any(1)
    if not has_pos.any():
        return embeddings.sum() * 0.0
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    mean_pos = (log_prob * positives).sum(1) / positives.sum(1).clamp(min=1)
    return -mean_pos[has_pos].mean()


def contrastive_groups(task: Task, targets: np.ndarray, edges: np.ndarray | None) -> np.ndarray:
    if task.label_kind == Task.REGRESSION:
        return np.digitize(targets, edges) if edges is not None else np.zeros(len(targets))
    return targets


def task_loss(task: Task, logits: torch.Tensor, targets: torch.Tensor,
              class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """The task's loss (``Task.loss``): mean squared error or cross-entropy, over the labelled
    targets only (per residue, ``IGNORE_INDEX`` / NaN targets and the <cls>, <eos> and padding
    positions drop out; per sequence every target counts)."""
    if task.loss == "mse":
        values, targets = logits.squeeze(-1).float(), targets.float()
        labelled = torch.isfinite(targets)
        if not labelled.any():
            return values.sum() * 0.0
        return F.mse_loss(values[labelled], targets[labelled])
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                           targets.long().reshape(-1), weight=class_weights,
                           ignore_index=IGNORE_INDEX)


def batch_mae(task: Task, logits: torch.Tensor, targets: torch.Tensor, model) -> float:
    if task == Task.RESIDUE_REGRESSION:
        labelled = torch.isfinite(targets)
        error = (logits.squeeze(-1).float() - targets.float())[labelled]
        return float(error.abs().mean() * model.info.target_std) if labelled.any() else 0.0
    if task == Task.RESIDUE_CLASSIFICATION:
        labelled = targets != IGNORE_INDEX
        logits, targets = logits[labelled], targets[labelled]
        if not len(targets):
            return 0.0
    if task.label_kind == Task.REGRESSION:
        return float((logits.squeeze(-1) - targets).abs().mean() * model.info.target_std)
    probs = torch.softmax(logits.float(), dim=-1)
    onehot = F.one_hot(targets.long(), probs.shape[-1]).float()
    return float((probs - onehot).abs().mean())


def labelled_count(task: Task, targets: torch.Tensor) -> int:
    """How many targets a batch holds: sequences, or labelled residues."""
    if task == Task.RESIDUE_REGRESSION:
        return int(torch.isfinite(targets).sum())
    if task == Task.RESIDUE_CLASSIFICATION:
        return int((targets != IGNORE_INDEX).sum())
    return len(targets)
