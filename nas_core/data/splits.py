"""Train / validation / held-out test splits.

The user's own split column wins. Otherwise, by default, a homology-aware split: sequences are
clustered by pairwise identity (MMseqs2) and whole clusters go to train, validation or test,
stratified by class (or label bin) as far as the clusters allow, so no validation or test
sequence has a close relative in training. The random stratified split stays available.
Every split records each validation/test sequence's identity to its nearest training sequence
(``nearest_train_identity``), whatever the method.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nas_core.common.tasks import Task
from nas_core.data import homology
from nas_core.data.dataset import Dataset, Problem
from nas_core.data.options import SplitOptions
from nas_core.data.pair_splits import assign_pair_splits

EXPLANATION = {  # the two a user chooses between (a file's own split column always wins)
    "homology": "Homology-aware (recommended): related proteins stay on the same side, so the "
    "test score says how the model does on proteins unlike those it was trained on.",
    "random": "Random: quick, but near-copies of training sequences land in the test set and "
    "inflate the score.",
}


def _strata(frame: pd.DataFrame, task: Task) -> np.ndarray:
    if task.per_residue:  # a protein carries many labels: proteins are not stratified
        return np.zeros(len(frame), dtype=int)
    if task.label_kind == Task.REGRESSION:
        values = frame["label"].astype(float)
        bins = min(5, max(1, len(frame) // 20))
        return pd.qcut(values.rank(method="first"), q=bins, labels=False).to_numpy()
    return frame["label"].astype(str).to_numpy()


def _cut(index: np.ndarray, strata: np.ndarray | None, size: float,
         seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``index`` into (rest, cut) with ``size`` share in cut, stratified when possible."""
    # scikit-learn loads here, not with the module: the pages that only list datasets need
    # this module and none of scikit-learn's 0.6 s
    from sklearn.model_selection import train_test_split

    if strata is not None:
        _, counts = np.unique(strata, return_counts=True)
        if counts.min() < 2:
            strata = None
    try:
        return train_test_split(index, test_size=size, random_state=seed, stratify=strata)
    except ValueError:
        return train_test_split(index, test_size=size, random_state=seed, stratify=None)


def _random_split(frame: pd.DataFrame, task: Task, opts: SplitOptions) -> Problem:
    idx = frame.index.to_numpy()
    strata = _strata(frame, task)
    rest, test = _cut(idx, strata, opts.test_fraction, opts.seed)
    rest_strata = strata[np.searchsorted(idx, rest)]
    share = opts.valid_fraction / (1.0 - opts.test_fraction)
    train, valid = _cut(rest, rest_strata, share, opts.seed + 1)
    frame.loc[train, "split"] = "train"
    frame.loc[valid, "split"] = "valid"
    frame.loc[test, "split"] = "test"
    return Problem("info", "random_split",
                   f"Split at random (seed {opts.seed}, stratified by "
                   f"{'label bin' if task == 'regression' else 'class'}): {len(train)} train, "
                   f"{len(valid)} validation, {len(test)} test.")


def _homology_split(frame: pd.DataFrame, task: Task, opts: SplitOptions,
                    hits: pd.DataFrame) -> Problem:
    """Whole clusters to each split (see :func:`_place_clusters`); a warning instead when one
    family is too large for that."""
    identity = opts.identity or homology.default_identity(list(frame["sequence"]))
    n = len(frame)
    labels = homology.clusters(n, hits, identity)
    strata = pd.Series(_strata(frame, task)).astype(str).to_numpy()
    fractions = {"test": opts.test_fraction, "valid": opts.valid_fraction}
    split = _place_clusters(labels, strata, fractions, np.random.default_rng(opts.seed))
    largest = int(np.bincount(labels).max())
    if min(int((split == s).sum()) / (f * n) for s, f in fractions.items()) < 0.5:
        return Problem(
            "warning", "homology_impossible",
            f"A homology-aware split at {identity:.0%} identity is not possible here: "
            f"{largest:,} of {n:,} sequences are related to each other at that level (for "
            "instance variants of one protein). A random split is used instead, so the test "
            "score tells how the model does on variants of the proteins it was trained on, not "
            "on new ones.")
    frame["split"] = split
    counts = {s: int((split == s).sum()) for s in ("train", "valid", "test")}
    return Problem(
        "info", "homology_split",
        f"Homology-aware split at {identity:.0%} identity (MMseqs2, seed {opts.seed}): "
        f"{labels.max() + 1:,} clusters (largest {largest} sequences) kept whole; "
        f"{counts['train']} train, {counts['valid']} validation, {counts['test']} test.")


def _place_clusters(labels: np.ndarray, strata: np.ndarray, fractions: dict[str, float],
                    rng: np.random.Generator) -> np.ndarray:
    """Largest clusters first (they can only go to training), each to the split whose
    per-class shortfall it fills best without overshooting; the rest train."""
    n = len(labels)
    classes = sorted(set(strata))
    per_class = {c: int((strata == c).sum()) for c in classes}
    want = {s: {c: f * per_class[c] for c in classes} for s, f in fractions.items()}
    have = {s: dict.fromkeys(classes, 0) for s in fractions}
    total = {s: f * n for s, f in fractions.items()}
    sizes = np.bincount(labels)
    # stable sort: clusters of equal size keep the seeded shuffle
    order = sorted(rng.permutation(labels.max() + 1), key=lambda c: -sizes[c])
    members = pd.Series(np.arange(n)).groupby(labels).apply(list)
    split = np.full(n, "train", dtype=object)
    for cluster in order:
        rows = members[cluster]
        counts = pd.Series(strata[rows]).value_counts()
        best, best_fit = None, 0.0
        for s in ("test", "valid"):
            filled = sum(have[s].values())
            if filled + len(rows) > total[s] + max(1.0, 0.02 * total[s]):
                continue  # would overshoot this split
            # members that fill a class shortfall, minus members that overfill a class
            fit = sum(min(k, max(0.0, want[s][c] - have[s][c]))
                      - max(0.0, k - max(0.0, want[s][c] - have[s][c]))
                      for c, k in counts.items()) / len(rows)
            if fit > best_fit or (fit == best_fit and best is not None and filled / total[s] <
                                  sum(have[best].values()) / total[best]):
                best, best_fit = s, fit
        if best is not None and best_fit > 0:
            split[rows] = best
            for c, k in counts.items():
                have[best][c] += k
    return split


def _nearest_train(frame: pd.DataFrame, hits: pd.DataFrame) -> np.ndarray:
    train = (frame["split"] == "train").to_numpy()
    nearest = homology.nearest_in(hits, len(frame), train)
    return np.where(train, np.nan, np.round(nearest, 4))


def _leakage_notes(frame: pd.DataFrame, chosen_random: bool) -> list[Problem]:
    test = frame.loc[frame["split"] == "test", "nearest_train_identity"].to_numpy()
    warning = homology.leakage_warning(test)
    if warning is None:
        return []
    advice = " The homology-aware split avoids this." if chosen_random else ""
    return [Problem("warning", "test_near_duplicates", warning + advice)]


def assign_splits(dataset: Dataset, options: SplitOptions | None = None, *,
                  progress=None) -> tuple[Dataset, list[Problem]]:
    """Return a copy of ``dataset`` whose every row has a split (and, for validation and test
    rows, the identity to the nearest training sequence), and notes on what was done."""
    opts = options or SplitOptions()
    if dataset.pairs:
        return assign_pair_splits(dataset, opts, random_rows=_random_split, progress=progress)
    frame = dataset.frame.copy()
    notes: list[Problem] = []
    hits = None
    given = frame["split"].notna().all() and len(frame) > 0
    if opts.method == "column" and not given:
        raise ValueError("The split method 'column' needs a 'split' column (train/valid/test) "
                         "filled on every row; choose homology or random to let the app "
                         "split.")
    if given:
        present = set(frame["split"])
        missing = [s for s in ("train", "valid", "test") if s not in present]
        if "train" not in present:
            raise ValueError("The split column names no training rows: mark some rows 'train', "
                             "or leave the column empty to let the app split.")
        for part, fraction in (("test", opts.test_fraction), ("valid", opts.valid_fraction)):
            if part not in missing:
                continue
            train_idx = frame.index[frame["split"] == "train"].to_numpy()
            share = fraction / (frame["split"] == "train").mean()
            strata = _strata(frame.loc[train_idx], dataset.task)
            _, cut = _cut(train_idx, strata, min(share, 0.5), opts.seed)
            frame.loc[cut, "split"] = part
            notes.append(Problem(
                "info", f"carved_{part}",
                f"Your split column has no '{part}' rows: {len(cut)} training sequences were set "
                f"aside as {part} (seeded, stratified)."))
    else:
        hits = None
        if opts.method == "homology":
            hits = homology.all_hits(list(frame["sequence"]), progress=progress)
            notes.append(_homology_split(frame, dataset.task, opts, hits))
        if opts.method == "random" or notes[-1].code == "homology_impossible":
            notes.append(_random_split(frame, dataset.task, opts))
    if hits is None:
        hits = homology.all_hits(list(frame["sequence"]), progress=progress)
    if progress:
        progress("measuring each sequence's identity to its nearest training sequence", 0.9)
    frame["nearest_train_identity"] = _nearest_train(frame, hits)
    notes.extend(_leakage_notes(frame, chosen_random=not given and opts.method == "random"))
    out = Dataset(frame, dataset.task, dataset.label_names, dataset.name)
    if not dataset.task.is_regression:
        for part in ("train", "valid"):
            labels = out.part(part)["label"]
            seen = set("".join(labels)) if dataset.task.per_residue else set(labels)
            lost = [c for c in dataset.label_names or [] if c not in seen]
            if lost:
                notes.append(Problem(
                    "warning", "class_missing_in_split",
                    f"Class(es) {', '.join(map(repr, lost))} have no sequence in the {part} "
                    "split; metrics for them will be missing."))
    return out, notes
