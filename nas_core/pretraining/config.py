"""What a pretraining run is: the backbone's shape (or the backbone it continues), the token
budget and ESM-2's optimisation recipe. Validated once here, then trusted."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from nas_core.common.records import Record, help_text

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def parse_shape(text: str) -> tuple[int, int, int, int]:
    """``"6,320,20,1280"``: layers, width, attention heads, feed-forward width."""
    try:
        layers, hidden, heads, ffn = (int(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"shape '{text}' is not four numbers: give layers,width,heads,"
                         "feed-forward, e.g. 6,320,20,1280 (ESM-2 8M).") from None
    return layers, hidden, heads, ffn


@dataclass(frozen=True)
class PretrainConfig(Record):
    """A masked-language-model pretraining run (ESM-2's recipe unless changed)."""

    tokens: int = field(default=10_000_000, metadata=help_text(
        "How many tokens to train on (residues and the <cls>/<eos> around each crop; a "
        "resumed run counts the tokens it has already seen)."))
    shape: str | None = field(default=None, metadata=help_text(
        "From scratch: layers,width,heads,feed-forward (ESM-2 8M is 6,320,20,1280). Give "
        "this or a backbone to continue."))
    base: str | None = field(default=None, metadata=help_text(
        "Continue pretraining this backbone (a registry name or a local checkpoint folder) "
        "on your sequences instead of starting from random weights."))
    max_length: int = field(default=512, metadata=help_text(
        "Residues per training crop: a longer protein contributes a random stretch this long "
        "each epoch (ESM-2 used 1,022)."))
    batch_tokens: int = field(default=16_384, metadata=help_text(
        "Padded tokens per batch: crops of similar length share a batch until it holds this "
        "many, so little is spent on padding."))
    lr: float = field(default=4e-4, metadata=help_text(
        "Peak learning rate of AdamW (ESM-2: 4e-4), after a linear warm-up; it then falls "
        "linearly to a tenth of the peak by the end of the budget."))
    warmup: float = field(default=0.05, metadata=help_text(
        "Share of the optimiser steps spent warming the learning rate up (at most 2,000 "
        "steps, ESM-2's warm-up)."))
    weight_decay: float = field(default=0.01, metadata=help_text("AdamW weight decay."))
    clip: float = field(default=1.0, metadata=help_text("Gradient norm clipping."))
    select: float = field(default=0.15, metadata=help_text(
        "Share of residues selected for the loss (80% masked, 10% random, 10% kept)."))
    validation: int = field(default=500, metadata=help_text(
        "Proteins drawn as seeds of the held-out validation set; every protein of the corpus "
        "at least `identity` identical to one of them (MMseqs2) is held out with them, so the "
        "validation perplexity measures proteins unlike any trained on."))
    identity: float = field(default=0.3, metadata=help_text(
        "Identity at which a protein counts as a relative of a validation protein."))
    eval_points: int = field(default=10, metadata=help_text(
        "How many times the held-out perplexity is measured over the budget (the curve); a "
        "checkpoint is written at each."))
    eval_residues: int = field(default=200_000, metadata=help_text(
        "Residues of the validation set scored at each measurement (the first proteins of a "
        "fixed order, every time the same)."))
    seed: int = field(default=0, metadata=help_text(
        "Seeds the weights, the validation draw, the crops, batches and masks: a resumed run "
        "continues exactly where it stopped."))
    device: str = field(default="auto", metadata=help_text("auto, cpu, cuda or cuda:N."))

    def __post_init__(self) -> None:
        if (self.shape is None) == (self.base is None):
            raise ValueError("give either a shape (layers,width,heads,feed-forward) to start "
                             "from random weights or a backbone to continue, not both.")
        if self.shape is not None:
            layers, hidden, heads, ffn = parse_shape(self.shape)
            if min(layers, hidden, heads, ffn) < 1 or hidden % heads:
                raise ValueError(f"shape {self.shape}: every number must be positive and the "
                                 "width a multiple of the heads.")
        if self.tokens < 1:
            raise ValueError("the token budget must be at least 1.")
        if not 16 <= self.max_length <= 1022:
            raise ValueError("max_length must be between 16 and 1,022 residues (ESM-2's "
                             "limit).")
        if self.batch_tokens < self.max_length + 2:
            raise ValueError(f"batch_tokens ({self.batch_tokens}) must hold at least one "
                             f"full crop ({self.max_length + 2} tokens).")
        if self.lr <= 0 or not 0 <= self.warmup < 1 or self.clip <= 0:
            raise ValueError("lr and clip must be positive and warmup in [0, 1).")
        if not 0 < self.select < 1 or not 0 < self.identity <= 1:
            raise ValueError("select must be in (0, 1) and identity in (0, 1].")
        if self.validation < 1 or self.eval_points < 1 or self.eval_residues < 1:
            raise ValueError("validation, eval_points and eval_residues must be positive.")

    def same_run(self, other: PretrainConfig) -> bool:
        """Whether ``other`` continues this run (only the budget and device may differ)."""
        keep = {"tokens", "device", "eval_points"}
        mine = {k: v for k, v in self.to_dict().items() if k not in keep}
        theirs = {k: v for k, v in other.to_dict().items() if k not in keep}
        return json.dumps(mine, sort_keys=True) == json.dumps(theirs, sort_keys=True)


def check_backbone_name(name: str) -> str:
    """A new backbone's name: it becomes a folder, so letters, digits, '.', '_' and '-' only."""
    name = name.strip()
    if not NAME.match(name):
        raise ValueError(f"'{name}' cannot name a backbone: use 1 to 64 letters, digits, '.', "
                         "'_' or '-', starting with a letter or digit.")
    return name


@dataclass(frozen=True)
class PretrainRequest:
    """A pretraining job: what to learn from and what to call the result (the job table keeps
    it as its configuration)."""

    corpus: str  # the corpus file in the workspace
    name: str  # the new backbone's name (its folder under the workspace's backbones/)
    config: PretrainConfig
    dataset_id: str | None = None  # when the corpus is a stored dataset's own sequences

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", check_backbone_name(self.name))

    def to_dict(self) -> dict:
        return {"kind": "pretrain", "corpus": self.corpus, "name": self.name,
                "dataset_id": self.dataset_id, "pretrain": self.config.to_dict(),
                "n_trials": 1}

    @classmethod
    def from_dict(cls, data: dict) -> PretrainRequest:
        return cls(data["corpus"], data["name"], PretrainConfig.from_dict(data["pretrain"]),
                   data.get("dataset_id"))
