"""Train / validation / held-out test splits.

The user's own split column wins. Otherwise a seeded split stratified by class (or by label
quantile bin for regression). Sequences are unique after validation, so an identical sequence
can never sit in two splits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from nas_core.data import Dataset, Problem


@dataclass(frozen=True)
class SplitOptions:
    valid_fraction: float = field(default=0.1, metadata={
        "help": "Share of sequences used to choose between architectures."})
    test_fraction: float = field(default=0.1, metadata={
        "help": "Share held out and used once, to report the final model's quality."})
    seed: int = field(default=0, metadata={"help": "Same seed, same split."})

    def __post_init__(self) -> None:
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 < value < 0.5:
                raise ValueError(f"{name} must be between 0 and 0.5, not {value}.")
        if self.valid_fraction + self.test_fraction >= 0.8:
            raise ValueError("valid_fraction + test_fraction must leave at least 20% to train.")


def _strata(frame: pd.DataFrame, task: str) -> np.ndarray:
    if task == "regression":
        values = frame["label"].astype(float)
        bins = min(5, max(1, len(frame) // 20))
        return pd.qcut(values.rank(method="first"), q=bins, labels=False).to_numpy()
    return frame["label"].astype(str).to_numpy()


def _cut(index: np.ndarray, strata: np.ndarray | None, size: float,
         seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``index`` into (rest, cut) with ``size`` share in cut, stratified when possible."""
    if strata is not None:
        _, counts = np.unique(strata, return_counts=True)
        if counts.min() < 2:
            strata = None
    try:
        return train_test_split(index, test_size=size, random_state=seed, stratify=strata)
    except ValueError:
        return train_test_split(index, test_size=size, random_state=seed, stratify=None)


def assign_splits(dataset: Dataset, options: SplitOptions | None = None) -> tuple[Dataset,
                                                                                  list[Problem]]:
    """Return a copy of ``dataset`` whose every row has a split, and notes on what was done."""
    opts = options or SplitOptions()
    frame = dataset.frame.copy()
    notes: list[Problem] = []
    given = frame["split"].notna().all() and len(frame) > 0
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
        idx = frame.index.to_numpy()
        strata = _strata(frame, dataset.task)
        rest, test = _cut(idx, strata, opts.test_fraction, opts.seed)
        rest_strata = strata[np.searchsorted(idx, rest)]
        share = opts.valid_fraction / (1.0 - opts.test_fraction)
        train, valid = _cut(rest, rest_strata, share, opts.seed + 1)
        frame.loc[train, "split"] = "train"
        frame.loc[valid, "split"] = "valid"
        frame.loc[test, "split"] = "test"
        notes.append(Problem(
            "info", "random_split",
            f"Split at random (seed {opts.seed}, stratified by "
            f"{'label bin' if dataset.task == 'regression' else 'class'}): "
            f"{len(train)} train, {len(valid)} validation, {len(test)} test."))
    out = Dataset(frame, dataset.task, dataset.label_names, dataset.name)
    if dataset.task != "regression":
        for part in ("train", "valid"):
            seen = set(out.part(part)["label"])
            lost = [c for c in dataset.label_names or [] if c not in seen]
            if lost:
                notes.append(Problem(
                    "warning", "class_missing_in_split",
                    f"Class(es) {', '.join(map(repr, lost))} have no sequence in the {part} "
                    "split; metrics for them will be missing."))
    return out, notes
