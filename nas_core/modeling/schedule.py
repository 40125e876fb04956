"""The learning rate follows the batch. A search fills short-sequence batches to a token budget
(``min_batch_tokens``): peptides of 20 residues then travel about 180 to a step instead of the
architecture's 32, so an epoch makes several times fewer optimiser steps. At the architecture's
learning rate such a batch trains less per epoch; scaled with the batch it does not.

``sqrt``: a batch of n sequences where the architecture asks for b trains at lr·√(n/b), the
rule for Adam-type optimisers (Malladi et al., NeurIPS 2022; Granziol et al., JMLR 2022);
``linear``: lr·n/b (Goyal et al. 2017, for SGD); ``none``: the architecture's rate. The
scaled part is reached over a linear warm-up of the first optimiser steps. A batch at or under
the architecture's size keeps its rate (long proteins cut to fit memory are not slowed)."""

from __future__ import annotations

LR_RULES = ("sqrt", "linear", "none")
WARMUP_STEPS = 20


def batch_lr(base: float, n: int, batch_size: int, rule: str, step: int,
             warmup: int = WARMUP_STEPS) -> float:
    """The learning rate of optimiser step ``step`` (0-based, counted over the whole run)
    whose batch holds ``n`` sequences."""
    if rule == "none" or n <= batch_size:
        return base
    ratio = n / batch_size
    factor = ratio ** 0.5 if rule == "sqrt" else ratio
    if step < warmup:
        factor = 1.0 + (factor - 1.0) * (step + 1) / warmup
    return base * factor
