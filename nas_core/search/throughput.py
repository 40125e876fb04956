"""How fast this machine trains a backbone, measured once and remembered: the basis of the
run-time estimate on the Search page and of the Quick preset's budget.

A measurement builds the real model (the same code path as a trial) on random sequences of the
data's typical length, times a few optimiser steps and evaluation batches after a warm-up, and
stores the result in the workspace (``throughput.json``), keyed by everything that changes it:
backbone, depth, adaptation, batch, length, device, PyTorch version and thread count. Weights
do not matter for speed, so random-weight checkpoints measure as the real ones would.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from nas_core.backbones.download import is_downloaded
from nas_core.backbones.loading import encode
from nas_core.backbones.registry import resolve
from nas_core.common.tasks import Task
from nas_core.common.workspace import workspace_root
from nas_core.modeling.architecture import Architecture
from nas_core.modeling.batches import Encoded, effective_batch, length_batches
from nas_core.modeling.build import build_model
from nas_core.modeling.modules import TaskInfo
from nas_core.modeling.training import (
    TrainSettings,
    predict_outputs,
    resolve_device,
    train_epoch,
)
from nas_core.search.config import SearchConfig
from nas_core.search.space import SearchSpace

_FILE = "throughput.json"
_MIN_TOKENS: int | None = SearchConfig("defaults").min_batch_tokens
_AMINO = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
# a frozen backbone's representations are computed once per study; its trials train the head
_HEAD_STEP_S = 0.002


@dataclass(frozen=True)
class StepTimes:
    """Seconds for one training step and one evaluation batch of ``batch`` sequences of
    ``length`` residues, and for building the model."""

    train_s: float
    eval_s: float
    build_s: float
    batch: int
    length: int


def _length_bucket(length: float) -> int:
    """Lengths are measured at the next power of two (at least 16, at most 1024)."""
    return int(min(1024, max(16, 2 ** math.ceil(math.log2(max(1.0, length))))))


def _key(backbone: str, n_layers: int, adaptation: str, batch: int, length: int,
         device: str) -> str:
    return "|".join([backbone, str(n_layers), adaptation, str(batch), str(length), device,
                     torch.__version__, str(torch.get_num_threads())])


def measure(backbone: str, n_layers: int, adaptation: str, *, batch: int, length: int,
            device: str = "cpu", steps: int = 4) -> StepTimes:
    """Time the real training and evaluation code on random sequences (no cache)."""
    torch_device = resolve_device(device)
    arch = Architecture(backbone=backbone, n_layers=n_layers, adaptation=adaptation,
                        batch_size=batch, max_epochs=1, lr=1e-4, finetune_layers=1)
    started = time.perf_counter()
    model, tokenizer = build_model(arch, TaskInfo(Task.BINARY, ["a", "b"]))
    model.to(torch_device)
    build_s = time.perf_counter() - started
    rng = np.random.default_rng(0)
    sequences = ["".join(rng.choice(_AMINO, length)) for _ in range(batch * (steps + 1))]
    data = Encoded(encode(sequences, tokenizer), np.arange(len(sequences)) % 2)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    batches = length_batches(data.lengths, batch)
    groups = data.targets.copy()
    pad = tokenizer.pad_token_id
    settings = TrainSettings(metric="loss", device=torch_device)
    train_epoch(model, data, batches[:1], groups, optimizer, params, epoch=1, pad_id=pad,
                settings=settings)  # warm-up: allocations, kernels
    started = time.perf_counter()
    train_epoch(model, data, batches[1:], groups, optimizer, params, epoch=1, pad_id=pad,
                settings=settings)
    train_s = (time.perf_counter() - started) / len(batches[1:])
    started = time.perf_counter()
    predict_outputs(model, data, device=torch_device, pad_id=pad, batch_size=batch)
    eval_s = (time.perf_counter() - started) / len(batches)
    return StepTimes(train_s, eval_s, build_s, batch, length)


class Throughput:
    """Measured step times of this workspace's machine (``throughput.json``)."""

    def __init__(self, root=None) -> None:
        self.path = Path(workspace_root(root)) / _FILE

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def known(self, backbone: str, n_layers: int, adaptation: str, batch: int, length: float,
              device: str) -> StepTimes | None:
        bucket = _length_bucket(length)
        row = self._read().get(_key(backbone, n_layers, adaptation, batch, bucket, device))
        return StepTimes(**row) if row else None

    def get(self, backbone: str, n_layers: int, adaptation: str, batch: int, length: float,
            device: str) -> StepTimes:
        """Remembered, or measured now (seconds) and remembered."""
        found = self.known(backbone, n_layers, adaptation, batch, length, device)
        if found is not None:
            return found
        bucket = _length_bucket(length)
        times = measure(backbone, n_layers, adaptation, batch=batch, length=bucket,
                        device=device)
        table = self._read()
        table[_key(backbone, n_layers, adaptation, batch, bucket, device)] = asdict(times)
        tmp = self.path.with_name(f"{_FILE}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(table, indent=1))
            tmp.replace(self.path)
        except OSError:
            tmp.unlink(missing_ok=True)  # a full disk: the estimate still works, unremembered
        return times


@dataclass(frozen=True)
class Estimate:
    """A search's run time: ``low`` with pruning and early stopping cutting trials short as
    they usually do, ``high`` when every trial trains every epoch (plus 25% for a busy
    machine); ``per_trial`` is the mean full trial; ``measured`` is False for a rough guess
    from the model's size: a backbone not downloaded yet, or (``pending``) one whose speed is
    not measured yet and could be (``estimate(..., measure_missing=True)`` measures it)."""

    low: float
    high: float
    per_trial: float
    measured: bool
    pending: bool = False


def _steps(n: int, batch: int) -> int:
    return max(1, math.ceil(n / batch))


def trial_seconds(times: StepTimes, adaptation: str, epochs: int, n_train: int,
                  n_val: int, batch: int | None = None) -> float:
    """A full trial: build, then every epoch's training steps and validation batches. A frozen
    backbone trains only its head after the representations are computed (once per study,
    counted by :func:`estimate`). ``batch``: sequences per step at the data's own length (a
    filled batch holds about the same tokens as the timed one, at its length bucket, but more
    sequences: fewer steps); default the timed batch."""
    batch = batch or times.batch
    if adaptation == "frozen":
        epoch = (_steps(n_train, batch) + _steps(n_val, batch)) * _HEAD_STEP_S
    else:
        epoch = _steps(n_train, batch) * times.train_s + _steps(n_val, batch) * times.eval_s
    return times.build_s + epochs * epoch


def estimate(space: SearchSpace, n_trials: int, n_train: int, n_val: int, mean_length: float,
             device: str, throughput: Throughput, *, measure_missing: bool = True,
             min_tokens: int | None = _MIN_TOKENS, frozen_first: int = 0) -> Estimate:
    """The run time of a search over ``space``, from this machine's measured step times for
    each backbone and adaptation the sampler can draw (at the middle depth and batch size,
    filled with short sequences up to ``min_tokens`` as training does); the first
    ``frozen_first`` of the ``n_trials`` keep the backbone frozen."""
    kind = "cuda" if device.startswith("cuda") else "cpu"
    middle = sorted(space.batch_sizes)[len(space.batch_sizes) // 2]
    batch = effective_batch(middle, _length_bucket(mean_length) + 2, min_tokens)  # timed
    steps_batch = effective_batch(middle, mean_length + 2, min_tokens)  # as training fills
    epochs = space.max_epochs_range[1]
    per_trial, frozen, once, measured, pending = [], [], 0.0, True, False
    for name in space.usable_backbones():
        spec = resolve(name)
        low, high = space.depth_bounds(spec) or (1, 1)
        depth = max(1, round((low + high) / 2))
        for adaptation in space.adaptations:
            timing_adaptation = "lora" if adaptation == "frozen" else adaptation
            if measure_missing and is_downloaded(spec.source):
                times = throughput.get(name, depth, timing_adaptation, batch, mean_length, kind)
            else:
                known = throughput.known(name, depth, timing_adaptation, batch, mean_length,
                                         kind)
                times = known or _rough(spec, depth, batch, mean_length, kind)
                measured = measured and known is not None
                pending = pending or (known is None and is_downloaded(spec.source))
            seconds = trial_seconds(times, adaptation, epochs, n_train, n_val, steps_batch)
            if adaptation != "frozen":  # some trials prune and distil a student after
                seconds *= compaction_factor(space)
            per_trial.append(seconds)
            if adaptation == "frozen":
                frozen.append(seconds)  # representations of every depth, once per study
                once = max(once, (_steps(n_train, steps_batch) + _steps(n_val, steps_batch))
                           * times.eval_s)
    mean_trial = sum(per_trial) / len(per_trial)
    first = min(frozen_first, n_trials) if frozen else 0
    full = first * sum(frozen) / max(1, len(frozen)) + (n_trials - first) * mean_trial + once
    return Estimate(low=0.4 * full, high=1.25 * full, per_trial=mean_trial, measured=measured,
                    pending=pending)


def compaction_factor(space: SearchSpace) -> float:
    """How much longer a trained-backbone trial takes on average when the sampler may choose
    to prune it: a pruned trial trains its student after the teacher, for the same epoch
    budget, at about its kept share of the compute (attention about a third of a layer, the
    feed-forward block two thirds)."""
    pairs = [(h, f) for h in space.heads_kept for f in space.ffn_kept]
    pruned = [(h, f) for h, f in pairs if h < 1 or f < 1]
    if not pruned:
        return 1.0
    share = sum(h / 3 + 2 * f / 3 for h, f in pruned) / len(pruned)
    return 1.0 + len(pruned) / len(pairs) * share


# effective FLOP/s when nothing is measured: only for a backbone not downloaded yet
_FLOPS = {"cpu": 2e10, "cuda": 5e13}


def _rough(spec, depth: int, batch: int, length: float, kind: str) -> StepTimes:
    params = spec.parameters_at_depth(depth)
    tokens = batch * (length + 2)
    train_s = 6 * params * tokens / _FLOPS[kind] + 0.01
    return StepTimes(train_s, train_s / 3, 2.0 + params / 2e8, batch, _length_bucket(length))
