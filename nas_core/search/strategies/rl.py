"""A reinforcement-learning controller as an Optuna sampler (REINFORCE, after Zoph & Le).

The policy is a softmax over the choices of every dimension of the search space (categorical
dimensions as they are; integer and float ranges in a few bins, log-spaced where the range is
logarithmic). It is trained with REINFORCE and a moving-average baseline on the validation
reward of finished trials.

The controller keeps no state of its own: the policy is replayed from the study's finished
trials, in order, every time it is needed. So it lives where everything else lives, in the
study storage: a resumed study, a restarted server and every distributed worker continue
from the same policy. (The controller here is factorised over dimensions rather than an
autoregressive RNN: our space has a dozen dimensions and a few hundred trials at most, where
an RNN's extra capacity cannot be trained.)
"""

from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

FLOAT_BINS = 8
MAX_INT_CHOICES = 16


def _actions(distribution: BaseDistribution) -> int:
    if isinstance(distribution, CategoricalDistribution):
        return len(distribution.choices)
    if isinstance(distribution, IntDistribution):
        return min(MAX_INT_CHOICES, (distribution.high - distribution.low) // distribution.step
                   + 1)
    return FLOAT_BINS


def _edges(distribution: FloatDistribution | IntDistribution) -> np.ndarray:
    low, high = float(distribution.low), float(distribution.high)
    n = _actions(distribution)
    if getattr(distribution, "log", False):
        return np.exp(np.linspace(math.log(low), math.log(high), n + 1))
    return np.linspace(low, high + (1 if isinstance(distribution, IntDistribution) else 0),
                       n + 1)


def action_of(distribution: BaseDistribution, value) -> int:
    """Which choice (or bin) a stored parameter value was."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices.index(value)
    assert isinstance(distribution, (FloatDistribution, IntDistribution))
    edges = _edges(distribution)
    return int(np.clip(np.searchsorted(edges, value, side="right") - 1, 0, len(edges) - 2))


def value_of(distribution: BaseDistribution, action: int, rng: np.random.RandomState):
    """A parameter value for a choice (uniform inside a bin)."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[action]
    assert isinstance(distribution, (FloatDistribution, IntDistribution))
    edges = _edges(distribution)
    low, high = edges[action], edges[action + 1]
    if isinstance(distribution, IntDistribution):
        drawn = int(rng.randint(int(math.ceil(low)), max(int(math.ceil(low)) + 1,
                                                          int(math.ceil(high)))))
        drawn = distribution.low + (drawn - distribution.low) // distribution.step * \
            distribution.step
        return int(min(max(drawn, distribution.low), distribution.high))
    if getattr(distribution, "log", False):
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        value = rng.uniform(low, high)
    return float(min(max(value, distribution.low), distribution.high))


class ReinforceSampler(BaseSampler):
    """REINFORCE controller over the search space's choices, replayed from the study."""

    def __init__(self, *, seed: int | None = None, learning_rate: float = 0.4,
                 baseline_decay: float = 0.8, entropy_floor: float = 0.02) -> None:
        self._seed = seed
        self.learning_rate = learning_rate
        self.baseline_decay = baseline_decay
        self.entropy_floor = entropy_floor  # every choice keeps at least this probability

    # Optuna's sampler interface: no joint (relative) sampling, every dimension independently
    def infer_relative_search_space(self, study, trial) -> dict:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict:
        return {}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution):
        probs = self.policy(study, param_name, param_distribution)
        rng = np.random.RandomState(None if self._seed is None else
                                    (self._seed * 1_000_003 + trial.number * 7919
                                     + _stable_hash(param_name)) % 2**32)
        action = int(rng.choice(len(probs), p=probs))
        return value_of(param_distribution, action, rng)

    # the controller ---------------------------------------------------------------------
    def rewards(self, study: optuna.Study) -> list[tuple[FrozenTrial, float]]:
        """Finished trials in order with their reward (higher is better): the validation
        value; a pruned trial its last reported value; a failed one the worst reward seen."""
        sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
        done = []
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            if t.state == TrialState.COMPLETE and t.values:
                done.append((t, sign * t.values[0]))
            elif t.state == TrialState.PRUNED and t.intermediate_values:
                done.append((t, sign * t.intermediate_values[max(t.intermediate_values)]))
            elif t.state == TrialState.FAIL and t.params:
                done.append((t, None))
        seen = [r for _, r in done if r is not None and math.isfinite(r)]
        worst = min(seen) if seen else 0.0
        return [(t, worst if r is None or not math.isfinite(r) else r) for t, r in done]

    def policy(self, study: optuna.Study, name: str,
               distribution: BaseDistribution) -> np.ndarray:
        """The choice probabilities of one dimension after replaying every finished trial."""
        n = _actions(distribution)
        logits = np.zeros(n)
        history = self.rewards(study)
        if not history:
            return np.full(n, 1.0 / n)
        scale = np.std([r for _, r in history]) or 1.0
        baseline = None
        for trial, reward in history:
            if baseline is None:
                baseline = reward
            advantage = (reward - baseline) / scale
            if name in trial.params and name in trial.distributions:
                action = action_of(distribution, trial.params[name])
                probs = _softmax(logits)
                grad = -probs
                grad[action] += 1.0  # d log pi(action) / d logits
                logits += self.learning_rate * advantage * grad
            baseline = self.baseline_decay * baseline + (1 - self.baseline_decay) * reward
        probs = _softmax(logits)
        probs = np.maximum(probs, self.entropy_floor)
        return probs / probs.sum()


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max())
    return z / z.sum()


def _stable_hash(text: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(text))
