"""Splits of protein pairs that say what they test.

A random split of pairs puts the same proteins in training and test: a model then scores well
by learning which proteins are "sticky", and many published interaction predictors fall to
chance once test pairs share no protein with training (Bernett et al., *Brief Bioinform*
2024). So by default **both partners are unseen**: proteins are clustered by identity (MMseqs2,
as for sequences), whole clusters go to train, validation or test, and a pair goes where both
its proteins went; a pair between a training and a test protein would leak and is dropped (and
counted). "One partner unseen" keeps pairs of a training and a test protein for the test; the
random pair split stays available, named as such on every result.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from nas_core.common.tasks import Task
from nas_core.data import homology
from nas_core.data.dataset import Dataset, Problem, Severity
from nas_core.data.options import SplitOptions

SIDES = ("train", "valid", "test")
EXPLANATION = {
    "both_unseen": "Both partners unseen (recommended): no test protein, nor a homolog of "
    "one, is in any training pair, so the test score says how the model does on new "
    "proteins.",
    "one_unseen": "One partner unseen: each test pair has one protein from training and one "
    "new protein (a known bait against new preys).",
    "random": "Random pairs: the same proteins are in training and test pairs; the score is "
    "inflated by what the model memorised about each protein.",
    "column": "Your file's own split column.",
}
WORDS = {"both_unseen": "both partners unseen", "one_unseen": "one partner unseen",
         "random": "random pairs (proteins shared with training)",
         "column": "the file's own split"}


def proteins_of(frame: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """The distinct proteins of a table of pairs and each pair's two indices into them."""
    both = pd.concat([frame["sequence"], frame["sequence_2"]], ignore_index=True)
    codes, unique = pd.factorize(both)
    return list(unique), codes.reshape(2, len(frame)).T.copy()


def _protein_shares(kind: str, opts: SplitOptions) -> dict[str, float]:
    """Shares of the proteins' pair ends per side that keep about the asked share of pairs:
    a pair with both partners unseen needs both in the test proteins (q_test squared), one
    partner unseen needs one test and one training protein (2 q_test q_train)."""
    f = {"test": opts.test_fraction, "valid": opts.valid_fraction}
    f_train = 1.0 - sum(f.values())
    if kind == "both_unseen":
        ratio = {s: float(np.sqrt(v / f_train)) for s, v in f.items()}
    else:
        ratio = {s: v / (2 * f_train) for s, v in f.items()}
    train = 1.0 / (1.0 + sum(ratio.values()))
    return {"train": train, **{s: r * train for s, r in ratio.items()}}


def _place(clusters: np.ndarray, weight: np.ndarray, positive: np.ndarray,
           shares: dict[str, float], rng: np.random.Generator) -> np.ndarray:
    """Side per protein: clusters (heaviest first, ties in seeded order) each to the
    validation or test side whose shortfall of pair ends (and of positive pair ends) it fills
    best without overshooting; everything else trains."""
    n_clusters = int(clusters.max()) + 1
    ends = np.stack([np.bincount(clusters, weights=weight - positive, minlength=n_clusters),
                     np.bincount(clusters, weights=positive, minlength=n_clusters)], axis=1)
    totals = ends.sum(0)
    want = {s: shares[s] * totals for s in ("test", "valid")}
    have = {s: np.zeros(2) for s in want}
    side = np.zeros(n_clusters, dtype=np.int8)  # 0 train, 1 valid, 2 test
    sizes = ends.sum(1)
    order = sorted(rng.permutation(n_clusters), key=lambda c: -sizes[c])
    for c in order:
        best, best_fit = None, 0.0
        for s in ("test", "valid"):
            if (have[s] + ends[c]).sum() > want[s].sum() * 1.02 + 1:
                continue
            short = np.maximum(0.0, want[s] - have[s])
            # ends that fill a class's shortfall, minus ends that overfill a class
            fit = float((np.minimum(ends[c], short) - np.maximum(0.0, ends[c] - short)).sum()
                        / max(sizes[c], 1.0))
            if fit > best_fit:
                best, best_fit = s, fit
        if best is not None:
            side[c] = SIDES.index(best)
            have[best] += ends[c]
    return side[clusters]


def _positive_ends(frame: pd.DataFrame, task: Task, pairs: np.ndarray, n: int) -> np.ndarray:
    """Per protein, its pairs of the rarest class (interacting ones), for stratification."""
    if task.label_kind is Task.REGRESSION:
        values = frame["label"].astype(float).to_numpy()
        rare = values >= np.quantile(values, 0.75)
    else:
        counts = frame["label"].value_counts()
        rare = (frame["label"] == counts.index[-1]).to_numpy()
    return np.bincount(pairs[rare].ravel(), minlength=n).astype(float)


def assign_pair_splits(dataset: Dataset, options: SplitOptions, *,
                       random_rows: Callable[[pd.DataFrame, Task, SplitOptions], Problem],
                       progress: Callable[[str, float], None] | None = None
                       ) -> tuple[Dataset, list[Problem]]:
    """A copy of a dataset of pairs with every kept pair's split, each partner's identity to
    its nearest training protein (``nearest_train_identity`` and ``..._2``, the leakage
    report), and notes naming the split kind and what was dropped. ``random_rows`` is the
    stratified random split of rows that sequences use (the random pair split is that)."""
    opts = options
    frame = dataset.frame.copy().reset_index(drop=True)
    proteins, pairs = proteins_of(frame)
    n = len(proteins)
    hits = homology.all_hits(proteins, progress=progress)
    given = bool(frame["split"].notna().all()) and len(frame) > 0
    notes: list[Problem] = []
    if given:
        kind = "column"
    elif opts.method == "column":
        raise ValueError("The split method 'column' needs a 'split' column (train/valid/test) "
                         "filled on every pair; choose homology or random to let the app "
                         "split.")
    else:
        kind = opts.pairs
    if kind == "random":
        notes.append(random_rows(frame, dataset.task.label_kind, opts))
        notes.append(Problem("info", "random_pair_split", (
            f"Random pair split (seed {opts.seed}): the same proteins are in training and "
            "test pairs, so the test score includes what the model memorised about each "
            "protein. Choose 'both partners unseen' for an honest estimate.")))
    elif kind != "column":
        identity = opts.identity or homology.default_identity(proteins)
        clusters = (homology.clusters(n, hits, identity) if opts.method == "homology"
                    else np.arange(n))
        weight = np.bincount(pairs.ravel(), minlength=n).astype(float)
        side = _place(clusters, weight, _positive_ends(frame, dataset.task, pairs, n),
                      _protein_shares(kind, opts), np.random.default_rng(opts.seed))
        a, b = side[pairs[:, 0]], side[pairs[:, 1]]
        if kind == "both_unseen":
            split = np.where(a == b, np.array(SIDES, dtype=object)[a], None)
        else:  # one partner unseen: a training protein with a new one; training pairs train
            other = np.maximum(a, b)
            split = np.where(np.minimum(a, b) == 0, np.array(SIDES, dtype=object)[other],
                             None)
        kept = ~pd.isna(split)
        dropped = int((~kept).sum())
        frame["split"] = split
        frame, pairs = frame[kept].reset_index(drop=True), pairs[kept]
        counts = frame["split"].value_counts()
        how = (f"MMseqs2 clusters at {identity:.0%} identity, {int(clusters.max()) + 1:,} "
               "clusters" if opts.method == "homology" else "proteins placed one by one, "
               "homologs not kept together")
        notes.append(Problem("info", "pair_split", (
            f"{WORDS[kind].capitalize()} ({how}, seed {opts.seed}): "
            f"{counts.get('train', 0):,} train, {counts.get('valid', 0):,} validation, "
            f"{counts.get('test', 0):,} test pairs. {dropped:,} pair(s) between proteins of "
            "different sides were dropped: they would let the test see training proteins.")))
    if frame.empty or not {"train", "valid", "test"} <= set(frame["split"]):
        raise ValueError(
            "Too few pairs are left for a training, a validation and a test set with "
            f"{WORDS[kind]}: most pairs share proteins across the sides. Use more pairs, the "
            "'one partner unseen' split, or larger valid/test fractions.")
    if (share := _class_shares(frame, dataset)) is not None:
        notes.append(share)
    if progress:
        progress("measuring each partner's identity to its nearest training protein", 0.9)
    _leakage_columns(frame, proteins, pairs, hits)
    notes.extend(_leakage_notes(frame, kind))
    out = Dataset(frame, dataset.task, dataset.label_names, dataset.name, pair_split=kind)
    return out, notes


def _class_shares(frame: pd.DataFrame, dataset: Dataset) -> Problem | None:
    """Binary pairs: the rare class's share per side. Interacting pairs cluster among a few
    proteins and random non-interacting ones do not, so keeping whole proteins per side keeps
    more of the former: a side's share is the average precision of guessing there."""
    if dataset.task is not Task.PAIR_BINARY or not dataset.label_names:
        return None
    rare = frame["label"].value_counts().index[-1]
    shares = {s: float((frame.loc[frame["split"] == s, "label"] == rare).mean()) for s in SIDES}
    return Problem("info", "pair_class_shares", (
        f"Pairs of class {rare!r}: " + ", ".join(f"{v:.0%} of {s}" for s, v in shares.items())
        + f". Average precision is judged against the test share ({shares['test']:.2f} is what "
        "a random ranking scores)."))


def _leakage_columns(frame: pd.DataFrame, proteins: list[str], pairs: np.ndarray,
                     hits: pd.DataFrame) -> None:
    """Each partner's identity to its nearest training protein (1 for a training protein
    itself); NaN on training pairs."""
    train_rows = (frame["split"] == "train").to_numpy()
    in_train = np.zeros(len(proteins), dtype=bool)
    in_train[pairs[train_rows].ravel()] = True
    nearest = np.where(in_train, 1.0, homology.nearest_in(hits, len(proteins), in_train))
    for column, partner in (("nearest_train_identity", 0), ("nearest_train_identity_2", 1)):
        frame[column] = np.where(train_rows, np.nan, np.round(nearest[pairs[:, partner]], 4))


def _leakage_notes(frame: pd.DataFrame, kind: str) -> list[Problem]:
    test = frame[frame["split"] == "test"]
    seen = (test[["nearest_train_identity", "nearest_train_identity_2"]] >= 1.0).sum(axis=1)
    both, one = int((seen == 2).sum()), int((seen == 1).sum())
    if not both and not one:
        return []
    words = (f"{both:,} of {len(test):,} test pairs have both partners in training pairs and "
             f"{one:,} one partner")
    severity: Severity = "info" if kind in ("one_unseen", "random") else "warning"
    return [Problem(severity, "seen_partners",
                    f"{words}: their score says how the model does on proteins it has seen."
                    + ("" if kind != "column" else " Choose the app's 'both partners unseen' "
                       "split for new proteins."))]
