"""Knowledge distillation: a pruned student learns the task-trained teacher's outputs.

The loss is ``(1 - alpha) * task + alpha * soft`` plus an optional pooled-embedding term:
soft targets are the teacher's class probabilities at a temperature ``T`` (KL divergence,
scaled by ``T**2``, Hinton et al. 2015), or its standardised values for regression (MSE); the
embedding term is ``1 - cosine`` between the student's and the teacher's pooled vectors. The
teacher is fixed, so its outputs on the training set are computed once and looked up by row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas_core.common.tasks import Task
from nas_core.modeling.batches import EVAL_MAX_TOKENS, Encoded, forward, length_batches
from nas_core.modeling.compaction_options import DistillConfig


@dataclass
class Distillation:
    """The teacher's fixed outputs on the training rows and the loss weights."""

    logits: torch.Tensor  # (n_train, n_outputs), float32, CPU
    pooled: torch.Tensor  # (n_train, hidden)
    config: DistillConfig

    def loss(self, task: Task, logits: torch.Tensor, pooled: torch.Tensor,
             batch: np.ndarray) -> torch.Tensor:
        """The distillation terms for the rows ``batch`` (the task loss is added by the caller,
        weighted ``1 - alpha``)."""
        index = torch.as_tensor(batch)
        teacher = self.logits[index].to(logits.device)
        soft = soft_loss(task, logits.float(), teacher, self.config.temperature)
        total = self.config.alpha * soft
        if self.config.embedding_weight > 0:
            target = self.pooled[index].to(pooled.device)
            cosine = F.cosine_similarity(pooled.float(), target, dim=-1)
            total = total + self.config.embedding_weight * (1 - cosine).mean()
        return total


def soft_loss(task: Task, student: torch.Tensor, teacher: torch.Tensor,
              temperature: float) -> torch.Tensor:
    if task.label_kind == Task.REGRESSION:
        return F.mse_loss(student.squeeze(-1), teacher.squeeze(-1))
    return F.kl_div(F.log_softmax(student / temperature, dim=-1),
                    F.log_softmax(teacher / temperature, dim=-1), log_target=True,
                    reduction="batchmean") * temperature ** 2


@torch.inference_mode()
def teacher_outputs(teacher: nn.Module, data: Encoded, *, device: torch.device, pad_id: int,
                    batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw logits and pooled vectors of ``teacher`` for every row of ``data`` (input order)."""
    teacher.eval()
    logits: torch.Tensor | None = None
    pooled: torch.Tensor | None = None
    for batch in length_batches(data.lengths, batch_size, max_tokens=EVAL_MAX_TOKENS):
        out, vec = forward(teacher, data, batch, pad_id, device)
        if logits is None or pooled is None:
            logits = torch.zeros((len(data), out.shape[1]))
            pooled = torch.zeros((len(data), vec.shape[1]))
        logits[torch.as_tensor(batch)] = out.float().cpu()
        pooled[torch.as_tensor(batch)] = vec.float().cpu()
    assert logits is not None and pooled is not None
    return logits, pooled


def divergence(task: Task, student: nn.Module, data: Encoded, teacher_logits: torch.Tensor, *,
               device: torch.device, pad_id: int, temperature: float = 1.0) -> float:
    """The student's mean soft loss to the teacher's outputs over ``data`` (KL divergence for
    classification, MSE for regression)."""
    logits, _ = teacher_outputs(student, data, device=device, pad_id=pad_id)
    return float(soft_loss(task, logits, teacher_logits, temperature))
