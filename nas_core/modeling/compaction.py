"""A smaller model from a trained one: prune heads and feed-forward neurons by importance (or
cut layers, the depth-only comparison), then recover by distillation from the unpruned teacher.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from nas_core.backbones.loading import truncate
from nas_core.modeling.batches import Encoded
from nas_core.modeling.build import count_parameters, load_trainable_state, merged_copy
from nas_core.modeling.compaction_options import DistillConfig
from nas_core.modeling.distillation import Distillation, teacher_outputs
from nas_core.modeling.modules import SequencePredictor
from nas_core.modeling.pruning import Compaction, apply, importance
from nas_core.modeling.training import TrainResult, TrainSettings, train


@dataclass
class TeacherCache:
    """The fixed teacher's outputs on the training rows (computed once, shared by every
    student of one teacher)."""

    logits: torch.Tensor
    pooled: torch.Tensor

    @classmethod
    def of(cls, teacher: SequencePredictor, data: Encoded, *, device: torch.device,
           pad_id: int) -> TeacherCache:
        teacher.to(device)
        return cls(*teacher_outputs(teacher, data, device=device, pad_id=pad_id))


@dataclass
class Student:
    model: SequencePredictor
    result: TrainResult
    n_parameters: int
    seconds: float
    kept: dict | None = None  # kept head / neuron indices per layer


@dataclass
class DistilRun:
    """Everything a distillation needs besides the student: the splits and the training
    settings of an ordinary trial (``settings.batch_size``: the teacher's unless given, as
    after an out-of-memory retry)."""

    train_data: Encoded
    val_data: Encoded
    val_targets_raw: np.ndarray
    pad_id: int
    settings: TrainSettings
    config: DistillConfig = DistillConfig()

    @property
    def device(self) -> torch.device:
        return self.settings.device


def pruned_student(teacher: SequencePredictor, compaction: Compaction, run: DistilRun, *,
                   cache: TeacherCache | None = None, distil: bool = True) -> Student:
    """Prune a merged copy of ``teacher`` to ``compaction`` (least important heads and
    neurons on the training data first) and distil it. ``distil=False`` trains the pruned
    model on the task loss alone (the benchmark's comparison)."""
    started = time.perf_counter()
    student = merged_copy(teacher)
    scores = importance(student, run.train_data, device=run.device, pad_id=run.pad_id,
                        method=compaction.method, seed=run.settings.seed)
    kept = apply(student, compaction, scores)
    student.compaction = compaction
    heads_share = compaction.heads[0] / compaction.heads_before
    ffn_share = compaction.ffn[0] / compaction.ffn_before
    arch = replace(teacher.arch, heads_kept=round(heads_share, 4),
                   ffn_kept=round(ffn_share, 4))
    return _recover(teacher, student, arch, run, cache, distil, started, kept)


def truncated_student(teacher: SequencePredictor, n_layers: int, run: DistilRun, *,
                      cache: TeacherCache | None = None) -> Student:
    """The depth-only comparison: the teacher's first ``n_layers`` layers, distilled the same
    way."""
    started = time.perf_counter()
    student = merged_copy(teacher)
    truncate(student.esm, n_layers)
    arch = replace(teacher.arch, n_layers=n_layers)
    return _recover(teacher, student, arch, run, cache, True, started, None)


def _recover(teacher: SequencePredictor, student: SequencePredictor, arch, run: DistilRun,
             cache: TeacherCache | None, distil: bool, started: float,
             kept: dict | None) -> Student:
    distillation = None
    if distil:
        cache = cache or TeacherCache.of(teacher, run.train_data, device=run.device,
                                         pad_id=run.pad_id)
        distillation = Distillation(cache.logits, cache.pooled, run.config)
    if run.settings.batch_size:
        arch = replace(arch, batch_size=run.settings.batch_size)
    student.arch = replace(arch, adaptation="full")  # every kept weight trains
    settings = replace(run.settings, lr=min(arch.lr, run.config.max_lr),
                       max_epochs=run.config.epochs or arch.max_epochs)
    result = train(student, run.train_data, run.val_data, run.val_targets_raw, settings,
                   pad_id=run.pad_id, distill=distillation)
    load_trainable_state(student, result.best_state)
    student.arch = arch
    student.eval()
    return Student(student, result, count_parameters(student), time.perf_counter() - started,
                   kept)
