"""Task metrics, computed the same way for trials, the held-out test, baselines and predict.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from nas_core.common.metric_names import (
    DIRECTIONS,
    IGNORE_INDEX,
)
from nas_core.common.tasks import Task


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _confusion(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k).astype(float)


def _mcc(c: np.ndarray) -> float:
    """Matthews correlation (multiclass, Gorodkin's R_K) from a confusion matrix; as
    scikit-learn, 0 when undefined."""
    t, p, n = c.sum(1), c.sum(0), c.sum()
    cov_tp = np.trace(c) * n - t @ p
    denominator = np.sqrt((n * n - p @ p) * (n * n - t @ t))
    return float(cov_tp / denominator) if denominator else 0.0


def _f1_macro(c: np.ndarray) -> float:
    tp = np.diag(c)
    denominator = c.sum(0) + c.sum(1)
    return float(np.mean(np.divide(2 * tp, denominator, out=np.zeros_like(tp),
                                   where=denominator > 0)))


def _auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC as the Mann-Whitney statistic (average ranks for ties)."""
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    _, start, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    ranks[order] = np.repeat(start + (counts + 1) / 2.0, counts)
    n_pos = positive.sum()
    n_neg = len(positive) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_precision(y: np.ndarray, probs: np.ndarray) -> float | None:
    """Average precision of the positive class (the area under the precision-recall curve,
    as scikit-learn's step-wise sum): at one positive in ten, the honest summary of a
    ranking that ROC-AUC flatters. None without a positive."""
    if probs.shape[1] != 2 or not (y == 1).any():
        return None
    return float(skm.average_precision_score(y == 1, probs[:, 1]))


def _roc_auc(y: np.ndarray, probs: np.ndarray) -> float | None:
    k = probs.shape[1]
    if len(np.unique(y)) < k:
        return None
    if k == 2:
        return _auc(y == 1, probs[:, 1])
    return float(np.mean([_auc(y == c, probs[:, c]) for c in range(k)]))  # one-vs-rest, macro


def classification_metrics(y: np.ndarray, probs: np.ndarray, *, roc_auc: bool = True
                           ) -> dict[str, float | None]:
    """``y``: class indices; ``probs``: (n, k) class probabilities (``roc_auc=False`` skips the
    costliest metric, e.g. for three residue classes in a bootstrap loop)."""
    n, k = probs.shape
    onehot = np.eye(k)[y]
    pred = probs.argmax(1)
    eps = 1e-7
    confusion = _confusion(y, pred, k)
    return {
        "loss": float(-np.mean(np.log(np.clip(probs[np.arange(n), y], eps, 1.0)))),
        # Keras' MAE on probabilities: mean over samples and classes of |y - p|
        "mae": float(np.mean(np.abs(onehot - probs))),
        "accuracy": float(np.mean(pred == y)),
        "mcc": _mcc(confusion),
        "f1_macro": _f1_macro(confusion),
        **({"roc_auc": _roc_auc(y, probs)} if roc_auc else {}),
    }


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float | None]:
    y = np.asarray(y, dtype=float)
    pred = np.asarray(pred, dtype=float)
    err = pred - y
    constant = np.allclose(pred, pred[0]) if len(pred) else True
    return {
        "loss": float(np.mean(err ** 2)),
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err ** 2))),
        # a constant prediction carries no ranking: score it 0, not NaN
        "spearman": 0.0 if constant else _finite(stats.spearmanr(y, pred).statistic) or 0.0,
        "pearson": 0.0 if constant else _finite(stats.pearsonr(y, pred).statistic) or 0.0,
        "r2": float(skm.r2_score(y, pred)) if len(y) > 1 else None,
    }


def _labelled(task: Task, y, output) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per protein, the labelled residues' targets and outputs."""
    regression = task == Task.RESIDUE_REGRESSION
    keeps = [np.isfinite(t) if regression else np.asarray(t) != IGNORE_INDEX for t in y]
    return ([np.asarray(t)[k] for t, k in zip(y, keeps)],
            [np.asarray(o)[k] for o, k in zip(output, keeps)])


def protein_values(task: Task, y, output) -> np.ndarray:
    """Each protein's own metric (Spearman, or accuracy), NaN where it is undefined (fewer than
    three labelled residues, or one value only): what :data:`PER_PROTEIN` averages."""
    ys, outs = _labelled(task, y, output)
    if task == Task.RESIDUE_REGRESSION:
        rhos = [regression_metrics(t, o)["spearman"] if len(t) >= 3 and np.ptp(t) > 0
                else None for t, o in zip(ys, outs)]
        return np.array([np.nan if r is None else r for r in rhos], dtype=float)
    return np.array([np.mean(o.argmax(1) == t) if len(t) else np.nan
                     for t, o in zip(ys, outs)], dtype=float)


def residue_metrics(task: Task, y, output, *, only: str | None = None,
                    per_protein: np.ndarray | None = None) -> dict[str, float | None]:
    """Per-residue metrics: ``y`` and ``output`` hold one array per protein (targets with
    ``IGNORE_INDEX`` / NaN where unlabelled; probabilities (length, classes) or values). Pooled
    over all labelled residues, plus one metric averaged per protein (:data:`PER_PROTEIN`).

    ``only`` computes just that metric; ``per_protein`` gives the proteins' own values when
    they are known (a bootstrap resamples them instead of recomputing them)."""
    regression = task == Task.RESIDUE_REGRESSION
    key = "spearman_per_protein" if regression else "accuracy_per_protein"
    metrics: dict[str, float | None] = {}
    if only is None or only != key:
        ys, outs = _labelled(task, y, output)
        if not ys or not sum(len(t) for t in ys):
            return {}
        cat_y, cat_out = np.concatenate(ys), np.concatenate(outs)
        if regression:
            metrics = regression_metrics(cat_y, cat_out)
        else:
            metrics = classification_metrics(cat_y.astype(int), cat_out,
                                              roc_auc=cat_out.shape[1] == 2)
    if only is None or only == key:
        values = protein_values(task, y, output) if per_protein is None else per_protein
        values = values[np.isfinite(values)]
        metrics[key] = float(values.mean()) if len(values) else None
    return metrics


def compute_metrics(task: Task, y: np.ndarray, output: np.ndarray) -> dict[str, float | None]:
    if task.per_residue:
        return residue_metrics(task, y, output)
    if task.label_kind == Task.REGRESSION:
        return regression_metrics(y, output)
    metrics = classification_metrics(np.asarray(y, dtype=int), output)
    if task == Task.PAIR_BINARY:
        metrics["average_precision"] = _average_precision(np.asarray(y, dtype=int), output)
    return metrics


def one_metric(task: Task, y: np.ndarray, output: np.ndarray, metric: str) -> float | None:
    """A single metric, without the others (bootstrap loops call this thousands of times)."""
    if task.per_residue:
        return residue_metrics(task, y, output, only=metric).get(metric)
    if task.label_kind == Task.REGRESSION or metric in ("loss", "mae"):
        return compute_metrics(task, y, output).get(metric)
    y = np.asarray(y, dtype=int)
    k = output.shape[1]
    pred = output.argmax(1)
    if metric == "accuracy":
        return float(np.mean(pred == y))
    if metric == "mcc":
        return _mcc(_confusion(y, pred, k))
    if metric == "f1_macro":
        return _f1_macro(_confusion(y, pred, k))
    if metric == "average_precision":
        return _average_precision(y, output)
    return _roc_auc(y, output)


def resamples(size: int, n: int = 1000, seed: int = 0):
    """``n`` bootstrap resamples (index arrays) of ``size`` items, seeded."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield rng.integers(0, size, size)


def protein_resamples(partners: np.ndarray, n: int = 1000, seed: int = 0):
    """``n`` bootstrap resamples of pairs that resample *proteins*: pairs sharing a protein
    are not independent, so each resample draws the proteins with replacement and keeps each
    pair as often as the product of its two partners' draws (the two-way "pigeonhole"
    bootstrap, Owen 2007). ``partners``: (pairs, 2) protein indices."""
    rng = np.random.default_rng(seed)
    proteins, inverse = np.unique(partners, return_inverse=True)
    inverse = inverse.reshape(partners.shape)
    rows = np.arange(len(partners))
    for _ in range(n):
        drawn = np.bincount(rng.integers(0, len(proteins), len(proteins)),
                            minlength=len(proteins))
        yield np.repeat(rows, drawn[inverse[:, 0]] * drawn[inverse[:, 1]])


def percentile_interval(values: list[float], n: int, level: float = 0.95
                        ) -> list[float] | None:
    """The percentile interval of bootstrap values; None when fewer than half of the ``n``
    resamples gave a value (e.g. one class only)."""
    if len(values) < n // 2:
        return None
    alpha = (1 - level) / 2
    return [float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))]


def _finite_values(values) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def _resamples(size: int, n: int, seed: int, partners: np.ndarray | None):
    return resamples(size, n, seed) if partners is None else protein_resamples(partners, n,
                                                                               seed)


def metric_ci(task: Task, y: np.ndarray, output: np.ndarray, metric: str, *, n: int = 1000,
              level: float = 0.95, seed: int = 0, partners: np.ndarray | None = None
              ) -> list[float] | None:
    """Percentile bootstrap interval of one metric (of pairs: resampling their proteins,
    ``partners`` as in :func:`protein_resamples`)."""
    y = np.asarray(y)
    values = _finite_values(one_metric(task, y[idx], output[idx], metric)
                            for idx in _resamples(len(y), n, seed, partners))
    return percentile_interval(values, n, level)


def objective_value(metrics: dict, metric: str) -> float:
    """The value Optuna sees: a missing metric counts as the worst possible."""
    value = metrics.get(metric)
    if value is None or not math.isfinite(value):
        return -1.0 if DIRECTIONS[metric] == "maximize" else float("inf")
    return float(value)


def bootstrap_ci(task: Task, y: np.ndarray, output: np.ndarray, *, n: int = 1000,
                 level: float = 0.95, seed: int = 0, partners: np.ndarray | None = None
                 ) -> dict[str, list[float] | None]:
    """Percentile bootstrap intervals of every metric (resampling the test sequences; for
    pairs, their proteins: see :func:`protein_resamples`)."""
    y = np.asarray(y)
    samples: dict[str, list] = {}
    per_protein = (protein_values(task, y, output)
                   if task.per_residue else None)
    for idx in _resamples(len(y), n, seed, partners):
        values = (compute_metrics(task, y[idx], output[idx]) if per_protein is None else
                  residue_metrics(task, y[idx], output[idx], per_protein=per_protein[idx]))
        for key, value in values.items():
            samples.setdefault(key, []).append(value)
    return {key: percentile_interval(_finite_values(v), n, level) for key, v in samples.items()}
