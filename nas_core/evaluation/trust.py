"""How far the held-out numbers can be trusted: leakage between training and test sequences,
test metrics by identity to the training set, the best model against the reference with a
paired bootstrap, and a conformal uncertainty calibrated on the validation split.
"""

from __future__ import annotations

import numpy as np

from nas_core.common.metric_names import DIRECTIONS, IGNORE_INDEX
from nas_core.common.metrics import (
    metric_ci,
    one_metric,
    percentile_interval,
    protein_resamples,
    resamples,
)
from nas_core.common.report import Comparison, HistogramBin, IdentityBin, Leakage
from nas_core.common.tasks import Task
from nas_core.data.homology import (
    IDENTITY_BINS,
    identity_bin,
    leakage_warning,
    near_duplicate_share,
)

HISTOGRAM_EDGES = np.round(np.linspace(0.0, 1.0, 11), 2)


def leakage_report(identity: np.ndarray) -> Leakage:
    """The distribution of test sequences' identity to their nearest training sequence."""
    identity = np.asarray(identity, dtype=float)
    counts, _ = np.histogram(np.clip(identity, 0, 1), bins=HISTOGRAM_EDGES)
    warning = leakage_warning(identity)
    return Leakage(
        n=int(len(identity)),
        median=float(np.median(identity)) if len(identity) else None,
        near_duplicates=near_duplicate_share(identity),
        histogram=[HistogramBin(float(lo), float(hi), int(c))
                   for lo, hi, c in zip(HISTOGRAM_EDGES[:-1], HISTOGRAM_EDGES[1:], counts)],
        bins={name: int((identity_bin(identity) == name).sum())
              for _, _, name in IDENTITY_BINS},
        warning=warning and warning + " Look at the <30% row below for those.",
    )


def by_identity(task: Task, y: np.ndarray, output: np.ndarray, identity: np.ndarray,
                metric: str, *, n_boot: int = 500, partners: np.ndarray | None = None
                ) -> list[IdentityBin]:
    """Test metric per identity bin (<30%, 30-50%, 50-90%, >=90%), with bootstrap intervals
    where the bin has at least 10 sequences (pairs: resampling their proteins)."""
    bins = identity_bin(np.asarray(identity, dtype=float))
    rows = []
    for _, _, name in IDENTITY_BINS:
        mask = bins == name
        count = int(mask.sum())
        rows.append(IdentityBin(
            name, count,
            value=one_metric(task, y[mask], output[mask], metric) if count >= 2 else None,
            ci=metric_ci(task, y[mask], output[mask], metric, n=n_boot,
                         partners=None if partners is None else partners[mask])
            if count >= 10 else None))
    return rows


def compare(task: Task, y: np.ndarray, model: np.ndarray, reference: np.ndarray, metric: str,
            *, n: int = 1000, seed: int = 0, partners: np.ndarray | None = None) -> Comparison:
    """Model minus reference on the same bootstrap resamples of the test set (of pairs: of
    their proteins); the difference is larger than the noise when its 95% interval excludes
    zero (in the right direction)."""
    y = np.asarray(y)

    def difference(idx: np.ndarray) -> float | None:
        a = one_metric(task, y[idx], model[idx], metric)
        b = one_metric(task, y[idx], reference[idx], metric)
        return None if a is None or b is None else a - b

    interval = percentile_interval(
        [d for d in map(difference, resamples(len(y), n, seed) if partners is None
                        else protein_resamples(partners, n, seed))
         if d is not None and np.isfinite(d)], n)
    whole = difference(np.arange(len(y)))
    if interval is None or whole is None:
        return Comparison(metric, None, None, "undetermined")
    low, high = interval
    sign = 1 if DIRECTIONS[metric] == "maximize" else -1
    if sign * low > 0 and sign * high > 0:
        verdict = "better"
    elif sign * low < 0 and sign * high < 0:
        verdict = "worse"
    else:
        verdict = "within noise"
    return Comparison(metric, float(whole), [low, high], verdict)


def conformal(task: Task, y: np.ndarray, output: np.ndarray, level: float = 0.9) -> float:
    """Split-conformal threshold from the validation split: for regression the half-width of a
    ``level`` prediction interval (|error| quantile); for classification the score threshold
    q such that the set of classes with probability >= 1 - q holds the true class with
    probability ``level``."""
    if task.per_residue:
        # every labelled residue is one calibration example (residues of one protein are not
        # independent: the level holds on average over residues, not per protein)
        keeps = [np.isfinite(t) if task.is_regression else t != IGNORE_INDEX for t in y]
        y = np.concatenate([t[k] for t, k in zip(y, keeps)])
        output = np.concatenate([np.asarray(o)[k] for o, k in zip(output, keeps)])
    n = len(y)
    rank = min(1.0, np.ceil((n + 1) * level) / n)
    if task.is_regression:
        scores = np.abs(np.asarray(output, dtype=float) - np.asarray(y, dtype=float))
    else:
        scores = 1.0 - output[np.arange(n), np.asarray(y, dtype=int)]
    return float(np.quantile(scores, rank, method="higher"))
