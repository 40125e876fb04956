"""The validation proteins of a pretraining run, held out by homology: seed proteins drawn at
random, and every protein of the corpus that MMseqs2 finds at least ``identity`` identical to a
seed goes with them. No training protein then shares that much identity with a validation one
(as far as MMseqs2 finds), so the held-out perplexity measures unseen families, not recall."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nas_core.data import homology
from nas_core.pretraining.corpus import Corpus

MAX_HITS = 5000  # per seed: large families must come along whole


HOMOLOGY = "homology"
RANDOM = "random"  # the corpus is one family: no held-out family exists


@dataclass(frozen=True)
class Holdout:
    train: np.ndarray  # corpus rows
    valid: np.ndarray  # corpus rows: the seeds first, then their relatives
    method: str = HOMOLOGY

    def to_dict(self) -> dict:
        return {"train": self.train.tolist(), "valid": self.valid.tolist(),
                "method": self.method}

    @classmethod
    def from_dict(cls, data: dict) -> Holdout:
        return cls(np.asarray(data["train"], dtype=np.int64),
                   np.asarray(data["valid"], dtype=np.int64), data.get("method", HOMOLOGY))


def hold_out(corpus: Corpus, n_seeds: int, identity: float, seed: int, *,
             progress=None) -> Holdout:
    """Draw ``n_seeds`` validation proteins and move their relatives to validation too.

    A corpus that is one family (an evotuning set: variants or homologues of one protein)
    has no unseen family to hold out: when the relatives would take half of it, the seeds
    alone are held out, drawn at random (``method`` says so, and the card)."""
    n = len(corpus)
    if n < 4:
        raise ValueError(f"{corpus.source} has {n} distinct proteins: too few to hold any out "
                         "for validation (give at least a few hundred).")
    rng = np.random.default_rng([seed, 7])
    seeds = rng.choice(n, size=min(n_seeds, max(1, n // 10)), replace=False)
    texts = [corpus.text(i) for i in range(n)]
    hits = homology.search([texts[i] for i in seeds], texts, max_hits=MAX_HITS,
                           progress=progress)
    related = hits[hits["identity"] >= identity]["target"].to_numpy(dtype=np.int64)
    valid_set = set(seeds.tolist()) | set(related.tolist())
    if len(valid_set) > n // 2:
        train = np.array(sorted(set(range(n)) - set(seeds.tolist())), dtype=np.int64)
        return Holdout(train, seeds.astype(np.int64), RANDOM)
    relatives = np.array(sorted(valid_set - set(seeds.tolist())), dtype=np.int64)
    valid = np.concatenate([seeds.astype(np.int64), relatives])
    train = np.array(sorted(set(range(n)) - valid_set), dtype=np.int64)
    return Holdout(train, valid)
