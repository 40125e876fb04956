"""How far a long job that counts tokens has come (a pretraining run): written by the run to
its study, read by the Monitor."""

from __future__ import annotations

from dataclasses import dataclass

from nas_core.common.records import Record

POSITION_ATTR = "position"  # the running trial's user attribute that holds it


@dataclass(frozen=True)
class TokenProgress(Record):
    tokens: int
    budget: int
    step: int = 0
    loss: float | None = None
    tokens_per_second: float = 0.0

    @property
    def fraction(self) -> float:
        return min(1.0, self.tokens / self.budget) if self.budget else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if self.tokens_per_second <= 0:
            return None
        return max(0.0, (self.budget - self.tokens) / self.tokens_per_second)
