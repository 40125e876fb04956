"""Temperature scaling of probabilities: ``softmax(log p / T)``, the logits divided by ``T``
(``log p`` equals the logits up to a per-row constant, which softmax ignores). Shared by the
calibration that fits ``T`` and the predictor and ensemble that apply it."""

from __future__ import annotations

import numpy as np

from nas_core.common.tasks import Task

EPS = 1e-12


def scaled(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``probs`` with the logits divided by ``temperature``: softmax(log p / T)."""
    logits = np.log(np.clip(probs, EPS, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=-1, keepdims=True)


def scaled_outputs(task: Task, probs, temperature: float):
    """:func:`scaled` for a model's outputs: an array, or one array per protein."""
    if task == Task.RESIDUE_CLASSIFICATION:
        out = np.empty(len(probs), dtype=object)
        out[:] = [scaled(np.asarray(p), temperature) for p in probs]
        return out
    return scaled(np.asarray(probs, dtype=float), temperature)
