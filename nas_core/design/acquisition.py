"""Which candidates to measure next: acquisition rules over an ensemble's mean and spread, and a
greedy batch that keeps near-copies apart.

Every rule scores "higher is better" on the goal's scale: a value to minimise is negated first,
and for a chosen class the value is its calibrated probability.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from nas_core.design.config import RULES

UCB_BETA = 2.0
NEAR = 0.5  # identities below this count as unrelated for the diversity penalty


def expected_improvement(mean: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    """E[max(0, f - best)] for f ~ Normal(mean, sd); the plain improvement where sd is 0."""
    mean, sd = np.asarray(mean, float), np.asarray(sd, float)
    gain = mean - best
    safe = np.where(sd > 0, sd, 1.0)
    z = gain / safe
    ei = gain * stats.norm.cdf(z) + safe * stats.norm.pdf(z)
    return np.where(sd > 0, ei, np.maximum(gain, 0.0))


def acquire(rule: str, mean: np.ndarray, sd: np.ndarray, *, best: float,
            members: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Scores on the goal scale (higher first). ``members``: each ensemble member's values
    (members x candidates), which Thompson sampling draws from when there are several."""
    if rule not in RULES:
        raise ValueError(f"unknown acquisition rule '{rule}'; choose from {', '.join(RULES)}.")
    mean, sd = np.asarray(mean, float), np.asarray(sd, float)
    if rule == "greedy":
        return mean.copy()
    if rule == "ucb":
        return mean + UCB_BETA * sd
    if rule == "ei":
        return expected_improvement(mean, sd, best)
    rng = np.random.default_rng(seed)
    if members is not None and len(members) > 1:  # one member per candidate, plus its noise
        pick = rng.integers(0, len(members), size=mean.shape[0])
        return np.asarray(members, float)[pick, np.arange(mean.shape[0])]
    return rng.normal(mean, np.maximum(sd, 0.0))


def similarity(identity: np.ndarray | float) -> np.ndarray:
    """0 below :data:`NEAR` identity, rising to 1 for identical sequences."""
    return np.clip((np.asarray(identity, float) - NEAR) / (1.0 - NEAR), 0.0, 1.0)


def select_batch(score: np.ndarray, pairwise: np.ndarray, batch: int, *,
                 diversity: float = 0.5, train_identity: np.ndarray | None = None
                 ) -> tuple[list[int], np.ndarray]:
    """Greedy batch: each step takes the candidate with the best score, normalised to 0-1 over
    the pool, minus ``diversity`` times its similarity to the closest candidate already taken
    (or, at half weight, to the closest training sequence). Returns the chosen indices in order
    and each one's penalty when it was taken.

    ``pairwise``: candidates x candidates identity (0 where unrelated)."""
    score = np.asarray(score, float)
    n = len(score)
    span = float(score.max() - score.min()) if n else 0.0
    norm = (score - score.min()) / span if span > 0 else np.ones(n)
    base = (0.5 * similarity(train_identity) if train_identity is not None
            else np.zeros(n))
    closest = np.zeros(n)  # similarity to the nearest chosen candidate
    chosen: list[int] = []
    penalties = []
    available = np.ones(n, bool)
    for _ in range(min(batch, n)):
        penalty = diversity * np.maximum(closest, base)
        value = np.where(available, norm - penalty, -np.inf)
        pick = int(np.argmax(value))
        chosen.append(pick)
        penalties.append(float(penalty[pick]))
        available[pick] = False
        closest = np.maximum(closest, similarity(pairwise[pick]))
    return chosen, np.asarray(penalties)
