"""Losses: the task loss, the supervised contrastive term, and the MAE shown in the curves."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


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


def contrastive_groups(task: str, targets: np.ndarray, edges: np.ndarray | None) -> np.ndarray:
    if task == "regression":
        return np.digitize(targets, edges) if edges is not None else np.zeros(len(targets))
    return targets


def task_loss(task: str, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if task == "regression":
        return F.mse_loss(logits.squeeze(-1).float(), targets.float())
    return F.cross_entropy(logits.float(), targets.long())


def batch_mae(task: str, logits: torch.Tensor, targets: torch.Tensor, model) -> float:
    if task == "regression":
        return float((logits.squeeze(-1) - targets).abs().mean() * model.info.target_std)
    probs = torch.softmax(logits, dim=-1)
    onehot = F.one_hot(targets.long(), probs.shape[-1]).float()
    return float((probs - onehot).abs().mean())
