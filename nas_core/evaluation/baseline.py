"""A simple reference model fitted in seconds on the same splits: what the search must beat.

Short aligned sequences (one length, at most 100 residues) get a one-hot encoding per
position; everything else gets amino-acid + dipeptide composition. Logistic regression for
classification, ridge regression for regression (scikit-learn).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nas_core.common.metric_names import IGNORE_INDEX
from nas_core.common.metrics import compute_metrics
from nas_core.common.report import Baseline
from nas_core.common.tasks import Task
from nas_core.data.dataset import Dataset

AMINO = "ACDEFGHIKLMNPQRSTVWY"
_INDEX = np.full(128, -1, dtype=np.int64)


for _i, _a in enumerate(AMINO):
    _INDEX[ord(_a)] = _i


def _codes(seq: str) -> np.ndarray:
    return _INDEX[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]


def one_hot(sequences: list[str], length: int) -> np.ndarray:
    out = np.zeros((len(sequences), length, len(AMINO) + 1), dtype=np.float32)
    for i, seq in enumerate(sequences):
        codes = _codes(seq[:length])
        codes[codes < 0] = len(AMINO)  # X, B, Z, U, O
        out[i, np.arange(len(codes)), codes] = 1.0
    return out.reshape(len(sequences), -1)


def composition(sequences: list[str]) -> np.ndarray:
    """20 amino-acid frequencies + 400 dipeptide frequencies."""
    out = np.zeros((len(sequences), 20 + 400), dtype=np.float32)
    for i, seq in enumerate(sequences):
        codes = _codes(seq)
        valid = codes[codes >= 0]
        if len(valid):
            out[i, :20] = np.bincount(valid, minlength=20) / len(valid)
        pairs = codes[:-1] * 20 + codes[1:]
        pairs = pairs[(codes[:-1] >= 0) & (codes[1:] >= 0)]
        if len(pairs):
            out[i, 20:] = np.bincount(pairs, minlength=400) / len(pairs)
    return out


def rows(frame, pairs: bool) -> list:
    """What the reference reads of each row: a sequence, or a pair's two sequences."""
    if pairs:
        return list(zip(frame["sequence"], frame["sequence_2"]))
    return list(frame["sequence"])


def pair_composition(pairs: list[tuple[str, str]]) -> np.ndarray:
    """Both partners' composition combined symmetrically, as the siamese models combine
    their embeddings: [a + b, |a - b|, a * b] (A-B and B-A get the same features)."""
    a = composition([p[0] for p in pairs])
    b = composition([p[1] for p in pairs])
    return np.concatenate([a + b, np.abs(a - b), a * b], axis=1)


WINDOW = 7  # residues either side that the per-residue reference model sees
MAX_REFERENCE_RESIDUES = 150_000  # training residues the per-residue reference is fitted on


def window_features(sequences: list[str]) -> sparse.csr_matrix:
    """One row per residue: the one-hot residues in a window of ``WINDOW`` either side (21
    letters + one 'beyond the end' symbol per offset), sparse."""
    width = len(AMINO) + 2  # 20 amino acids, other letters, beyond the end
    rows = []
    for seq in sequences:
        codes = _codes(seq)
        codes[codes < 0] = len(AMINO)
        padded = np.concatenate([np.full(WINDOW, width - 1), codes, np.full(WINDOW, width - 1)])
        n = len(codes)
        cols = np.stack([padded[k: k + n] + k * width for k in range(2 * WINDOW + 1)], axis=1)
        rows.append(cols)
    cols = np.concatenate(rows) if rows else np.zeros((0, 2 * WINDOW + 1), dtype=np.int64)
    n_rows, per_row = cols.shape
    indptr = np.arange(0, n_rows * per_row + 1, per_row)
    return sparse.csr_matrix((np.ones(cols.size, dtype=np.float32), cols.ravel(), indptr),
                             shape=(n_rows, (2 * WINDOW + 1) * width))


def fit_residue_baseline(dataset: Dataset, *, evaluate_test: bool = True,
                         return_test_output: bool = False):
    """The per-residue reference: logistic (or ridge) regression on a one-hot window of
    ``WINDOW`` residues either side of each position, fitted on (at most
    ``MAX_REFERENCE_RESIDUES``, seeded) labelled training residues."""
    started = time.perf_counter()
    regression = dataset.task is Task.RESIDUE_REGRESSION
    train = dataset.part("train")
    x = window_features(list(train["sequence"]))
    y = np.concatenate(list(dataset.label_index(train["label"])))
    labelled = np.isfinite(y) if regression else y != IGNORE_INDEX
    index = np.flatnonzero(labelled)
    if len(index) > MAX_REFERENCE_RESIDUES:
        index = np.sort(np.random.default_rng(0).choice(index, MAX_REFERENCE_RESIDUES,
                                                        replace=False))
    if regression:
        model: Any = RidgeCV(alphas=np.logspace(-2, 3, 6))
    else:
        model = LogisticRegression(max_iter=300, C=0.5)
    model.fit(x[index], y[index])
    name = (f"{'ridge' if regression else 'logistic'} regression on a one-hot window of "
            f"{2 * WINDOW + 1} residues")
    outputs = {}

    def score(split: str) -> dict:
        frame = dataset.part(split)
        sequences = list(frame["sequence"])
        features = window_features(sequences)
        if regression:
            flat = model.predict(features)
        else:
            flat = np.zeros((features.shape[0], len(dataset.label_names or [])))
            flat[:, model.classes_] = model.predict_proba(features)
        bounds = np.cumsum([0] + [len(seq) for seq in sequences])
        output = np.empty(len(sequences), dtype=object)
        for i in range(len(sequences)):
            output[i] = flat[bounds[i]: bounds[i + 1]]
        outputs[split] = output
        return compute_metrics(dataset.task, dataset.label_index(frame["label"]), output)

    val = score("valid")
    test = score("test") if evaluate_test and len(dataset.part("test")) else None
    report = Baseline(name, aligned=False, residues=int(len(index)), val=val, test=test,
                      seconds=round(time.perf_counter() - started, 3))
    return (report, outputs.get("test")) if return_test_output else report


def fit_baseline(dataset: Dataset, *, evaluate_test: bool = True,
                 return_test_output: bool = False):
    """Fit on train, report validation (and test) metrics with the engine's metric code; with
    ``return_test_output``, also the test predictions (for paired comparisons)."""
    if dataset.task.per_residue:
        return fit_residue_baseline(dataset, evaluate_test=evaluate_test,
                                    return_test_output=return_test_output)
    started = time.perf_counter()
    parts = {s: dataset.part(s) for s in ("train", "valid", "test")}
    lengths = dataset.frame["sequence"].str.len()
    # variants of one protein (deep mutational scans, peptide windows) differ by substitutions
    aligned = (lengths.max() - lengths.min() <= 2 and lengths.max() <= 1022
               and not dataset.pairs)
    features: Callable[[list[Any]], np.ndarray]
    if dataset.pairs:
        features = pair_composition
        name = ("amino-acid + dipeptide composition of both partners, combined symmetrically "
                "([a+b, |a-b|, a*b])")
    elif aligned:
        length = int(lengths.max())
        features = lambda seqs: one_hot(seqs, length)  # noqa: E731
        name = f"one-hot residues ({length} positions)"
    else:
        features = composition
        name = "amino-acid + dipeptide composition"
    x_train = features(rows(parts["train"], dataset.pairs))
    y_train = dataset.label_index(parts["train"]["label"])
    if dataset.task.label_kind is Task.REGRESSION:
        model = RidgeCV(alphas=np.logspace(-3, 4, 15))
        name = f"ridge regression on {name}"
    else:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.5))
        name = f"logistic regression on {name}"
    model.fit(x_train, y_train)

    outputs = {}

    def score(split: str) -> dict:
        frame = parts[split]
        x = features(rows(frame, dataset.pairs))
        y = dataset.label_index(frame["label"])
        if dataset.task.label_kind is Task.REGRESSION:
            output = model.predict(x)
        else:
            output = np.zeros((len(x), len(dataset.label_names or [])))
            output[:, model.classes_] = model.predict_proba(x)
        outputs[split] = output
        return compute_metrics(dataset.task, y, output)

    val = score("valid")
    test = score("test") if evaluate_test and len(parts["test"]) else None
    report = Baseline(name, aligned=bool(aligned), val=val, test=test,
                      seconds=round(time.perf_counter() - started, 3))
    return (report, outputs.get("test")) if return_test_output else report
