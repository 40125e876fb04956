"""What the Compress step makes: target sizes, ranking and distillation (no torch)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from nas_core.common.records import help_text
from nas_core.common.report import Report
from nas_core.common.workspace import COMPRESS_RESULTS
from nas_core.modeling.compaction_options import DEFAULT_IMPORTANCE, IMPORTANCE, DistillConfig

RESULTS = COMPRESS_RESULTS
MIN_TARGET = 0.05


class CompressError(ValueError):
    """The run directory or the request cannot be compressed; the message says why."""


@dataclass(frozen=True)
class CompressConfig:
    """What the Compress step makes."""

    targets: tuple[float, ...] = field(default=(0.75, 0.5, 0.25), metadata=help_text(
        "Target sizes as shares of the chosen model's parameters (0.05 to 1), one variant "
        "each."))
    depth_baseline: bool = field(default=True, metadata=help_text(
        "Also distil the depth-only truncation of each size (fewer layers, all heads and "
        "width), for comparison."))
    importance: str = field(default=DEFAULT_IMPORTANCE, metadata={
        "help": "How heads and neurons are ranked: taylor (first-order loss change, Michel "
        "et al. 2019) or activation (mean activation magnitude, Minitron 2024).",
        "choices": IMPORTANCE})
    device: str = field(default="auto", metadata=help_text("cpu, cuda, cuda:N or auto."))
    distill: DistillConfig = DistillConfig()

    def __post_init__(self) -> None:
        if isinstance(self.targets, list):
            object.__setattr__(self, "targets", tuple(self.targets))
        if not self.targets:
            raise CompressError("give at least one target share, e.g. 0.5.")
        for t in self.targets:
            if not isinstance(t, (int, float)) or not math.isfinite(t) \
                    or not MIN_TARGET <= t <= 1:
                raise CompressError(
                    f"target {t} is outside {MIN_TARGET} to 1: each target is a share of the "
                    "chosen model's parameters (0.5 = half its size).")
        if self.importance not in IMPORTANCE:
            raise CompressError(f"importance must be one of {', '.join(IMPORTANCE)}.")
        if isinstance(self.distill, dict):
            object.__setattr__(self, "distill", DistillConfig(**self.distill))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CompressConfig:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def parse_targets(text: str) -> tuple[float, ...]:
    """``"0.75,0.5"`` (or percentages, ``"75%,50%"``) as shares."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            value = float(part[:-1]) / 100 if part.endswith("%") else float(part)
        except ValueError:
            raise CompressError(f"target '{part}' is not a number: give shares such as "
                                "0.75,0.5,0.25.") from None
        out.append(value)
    return tuple(out)


def planned(config: CompressConfig) -> int:
    """Variants the Compress step trains at most (some depth-only cuts may not fit)."""
    return len(config.targets) * (2 if config.depth_baseline else 1)


def estimated_seconds(report: Report, config: CompressConfig) -> float | None:
    """How long the Compress step should take here, from the chosen model's own measured
    training time: each variant distils for the same epochs (or ``distill.epochs``) at about
    its kept share of the compute plus a fixed part (the cached teacher outputs, tests and
    timing); None when the report kept no epoch times."""
    epochs = report.best.history
    seconds = sum(float(row.get("seconds") or 0) for row in epochs)
    if not epochs or seconds <= 0:
        return None
    per_epoch = seconds / len(epochs)
    distil = config.distill.epochs or len(epochs)
    shares = [t for t in config.targets] * (2 if config.depth_baseline else 1)
    return sum(per_epoch * distil * (0.3 + share) for share in shares) + 5.0 * len(shares)
