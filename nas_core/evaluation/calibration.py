"""Calibrated probabilities: temperature scaling (Guo et al. 2017) fitted on the validation
split, and the expected calibration error with its reliability diagram.

One temperature ``T`` divides the model's logits: the predicted class never changes, only how
sure the model says it is. Probabilities are all this module sees (``log p`` equals the logits
up to a per-row constant, which softmax ignores), so it serves sequence and per-residue models
alike (per residue, every labelled residue is one example)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from nas_core.common.metric_names import IGNORE_INDEX
from nas_core.common.probabilities import EPS, scaled
from nas_core.common.report import Calibration, ReliabilityBin
from nas_core.common.tasks import Task

BOUNDS = (0.05, 20.0)  # temperatures searched (log scale)
N_BINS = 15  # confidence bins of the expected calibration error (Guo et al.)


def flatten(task: Task, y, probs) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) as flat arrays: per residue, the labelled residues of every
    protein one after another."""
    if task.per_residue:
        keep = [np.asarray(t) != IGNORE_INDEX for t in y]
        return (np.concatenate([np.asarray(t)[k] for t, k in zip(y, keep)]).astype(int),
                np.concatenate([np.asarray(p)[k] for p, k in zip(probs, keep)]))
    return np.asarray(y, dtype=int), np.asarray(probs, dtype=float)


def fit_temperature(y: np.ndarray, probs: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``y`` (flat labels)."""
    if len(y) < 2:
        return 1.0
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        return float(-np.mean(np.log(np.clip(scaled(probs, np.exp(log_t))[rows, y], EPS,
                                             1.0))))

    found = minimize_scalar(nll, bounds=tuple(np.log(BOUNDS)), method="bounded",
                            options={"xatol": 1e-4})
    return float(np.exp(found.x)) if found.success else 1.0


def reliability(y: np.ndarray, probs: np.ndarray, bins: int = N_BINS) -> list[ReliabilityBin]:
    """Per confidence bin: how sure the model was (mean top probability), how often it was
    right, and how many predictions fell there."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            rows.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]),
                                       confidence=float(confidence[inside].mean()),
                                       accuracy=float(correct[inside].mean()),
                                       count=int(inside.sum())))
    return rows


def expected_calibration_error(y: np.ndarray, probs: np.ndarray, bins: int = N_BINS) -> float:
    """Weighted mean gap between confidence and accuracy over the confidence bins."""
    n = len(y)
    if not n:
        return float("nan")
    return float(sum(r.count / n * abs(r.confidence - r.accuracy)
                     for r in reliability(y, probs, bins)))


def calibration_report(task: Task, y_val, val_probs, y_test, test_probs) -> Calibration:
    """The temperature fitted on the validation split, and the test split's calibration error
    and reliability diagram before and after it."""
    temperature = fit_temperature(*flatten(task, y_val, val_probs))
    y, before = flatten(task, y_test, test_probs)
    after = scaled(before, temperature)
    return Calibration(temperature=round(temperature, 4), fitted_on="validation",
                       ece_before=expected_calibration_error(y, before),
                       ece_after=expected_calibration_error(y, after),
                       reliability_before=reliability(y, before),
                       reliability_after=reliability(y, after))


def ensemble_ece(task: Task, y_test, test_probs) -> float:
    """The test calibration error of an ensemble's averaged (member-calibrated) probabilities."""
    return expected_calibration_error(*flatten(task, y_test, test_probs))
