"""An ensemble of the search's best architectures: the top trials, different architectures
preferred over near-copies of one, each calibrated on the validation split, their probabilities
(or values) averaged. The members' spread is the uncertainty predictions and "test these next"
use."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from nas_core.common.report import EnsembleMember, Skipped
from nas_core.modeling.architecture import Architecture
from nas_core.modeling.modules import SequencePredictor

# what makes two architectures different; the rest (learning rate, dropout, epochs...) only
# tunes one
STRUCTURE = ("backbone", "n_layers", "adaptation", "pooling", "head_layers", "head_width",
             "residue_head", "heads_kept", "ffn_kept", "finetune_layers", "lora_rank")


def structure(arch: dict) -> tuple:
    full = Architecture.from_dict(arch).to_dict()
    return tuple(full.get(k) for k in STRUCTURE)


def distance(a: dict, b: dict) -> int:
    """How many structural choices two architectures make differently."""
    return sum(x != y for x, y in zip(structure(a), structure(b)))


@dataclass
class Choice:
    members: list[FrozenTrial]
    skipped: list[Skipped] = field(default_factory=list)


def choose_members(study: optuna.Study, k: int, *, usable=lambda t: None) -> Choice:
    """The k best completed trials by validation metric, taking a trial whose architecture
    differs from every one already taken before any near-copy (same structure, other learning
    rate or dropout): near-copies only fill places left over. ``usable(trial)`` returns a
    reason when a trial cannot be a member (its weights are elsewhere)."""
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.values and np.isfinite(t.values[0]) and "architecture" in t.user_attrs]
    ranked = sorted(complete, key=lambda t: t.values[0], reverse=maximize)
    choice = Choice([])
    near_copies = []
    for trial in ranked:
        if len(choice.members) == k:
            break
        reason = usable(trial)
        if reason:
            choice.skipped.append(Skipped(trial.number, reason))
            continue
        arch = trial.user_attrs["architecture"]
        if any(distance(arch, m.user_attrs["architecture"]) == 0 for m in choice.members):
            near_copies.append(trial)
            continue
        choice.members.append(trial)
    for trial in near_copies[:k - len(choice.members)]:
        choice.members.append(trial)
    by_rank = {t.number: i for i, t in enumerate(ranked)}
    choice.members.sort(key=lambda t: by_rank[t.number])
    return choice


def member_row(trial: FrozenTrial, model: SequencePredictor, n_parameters: int,
               val: dict, metric: str) -> EnsembleMember:
    return EnsembleMember(
        trial.number, Architecture.from_dict(trial.user_attrs["architecture"]).describe(
            model.info.per_residue, model.info.task.per_pair),
        val=val.get(metric), n_parameters=n_parameters, temperature=model.info.temperature)
