"""How a trained model is made smaller: how heads and neurons are ranked, and how the pruned
student learns from its teacher. The settings alone (no torch), for the command line and pages."""

from __future__ import annotations

from dataclasses import dataclass, field

from nas_core.common.records import help_text

IMPORTANCE = ("taylor", "activation")
DEFAULT_IMPORTANCE = "taylor"


@dataclass(frozen=True)
class DistillConfig:
    """How a pruned student is trained against its teacher."""

    alpha: float = field(default=0.7, metadata=help_text(
        "Weight of the teacher's soft targets; 1 - alpha goes to the task loss."))
    temperature: float = field(default=2.0, metadata=help_text(
        "Softmax temperature of the soft targets (classification)."))
    embedding_weight: float = field(default=0.5, metadata=help_text(
        "Weight of the pooled-embedding term (1 - cosine to the teacher's); 0 turns it off."))
    max_lr: float = field(default=3e-4, metadata=help_text(
        "Learning rate cap for the student: every kept weight trains, so it stays low."))
    epochs: int | None = field(default=None, metadata=help_text(
        "Distillation epochs (default: the teacher's epoch budget)."))

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha lies in [0, 1], not {self.alpha}.")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, not {self.temperature}.")
        if self.embedding_weight < 0 or self.max_lr <= 0:
            raise ValueError("embedding_weight must be >= 0 and max_lr > 0.")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError("distil for at least 1 epoch.")
