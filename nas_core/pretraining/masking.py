"""ESM-2's masking recipe (Lin et al. 2023, after BERT): 15% of the residues are selected; of
those 80% become ``<mask>``, 10% a random amino acid and 10% stay as they are; the loss is on
the selected positions only. ``<cls>``, ``<eos>`` and padding are never selected. ESM-2's token
dropout (the ``<mask>`` embeddings zeroed and the rest rescaled) is the backbone's own
``token_dropout`` setting, applied by the model itself."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nas_core.backbones.registry import ESM2_VOCAB

MASK_ID = ESM2_VOCAB.index("<mask>")
PAD_ID = ESM2_VOCAB.index("<pad>")
FIRST_RESIDUE, LAST_RESIDUE = ESM2_VOCAB.index("L"), ESM2_VOCAB.index("O")
STANDARD = torch.arange(ESM2_VOCAB.index("L"), ESM2_VOCAB.index("C") + 1)  # the 20 residues
IGNORE = -100  # no loss at this position


@dataclass(frozen=True)
class MaskingRecipe:
    """Rates of the recipe (ESM-2's by default)."""

    select: float = 0.15
    mask: float = 0.8  # of the selected: replaced by <mask>
    random: float = 0.1  # of the selected: a random standard amino acid; the rest unchanged

    def __post_init__(self) -> None:
        if not 0 < self.select < 1:
            raise ValueError(f"the selected share must be between 0 and 1, not {self.select}.")
        if self.mask < 0 or self.random < 0 or self.mask + self.random > 1:
            raise ValueError("mask and random shares must be >= 0 and add up to at most 1.")


def residue_positions(input_ids: torch.Tensor) -> torch.Tensor:
    """Where the residues are (not ``<cls>``, ``<eos>``, padding or other special tokens)."""
    return (input_ids >= FIRST_RESIDUE) & (input_ids <= LAST_RESIDUE)


def mask_tokens(input_ids: torch.Tensor, generator: torch.Generator,
                recipe: MaskingRecipe = MaskingRecipe()) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, labels) for one batch: ``labels`` holds the true token at the selected
    positions and :data:`IGNORE` elsewhere; ``inputs`` has the selected positions replaced as
    the recipe says. Drawn from ``generator`` only, so a resumed run repeats them exactly."""
    device = input_ids.device
    candidates = residue_positions(input_ids)
    draw = torch.rand(input_ids.shape, generator=generator, device="cpu").to(device)
    selected = candidates & (draw < recipe.select)
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE))
    what = torch.rand(input_ids.shape, generator=generator, device="cpu").to(device)
    inputs = input_ids.clone()
    to_mask = selected & (what < recipe.mask)
    to_random = selected & (what >= recipe.mask) & (what < recipe.mask + recipe.random)
    inputs[to_mask] = MASK_ID
    picks = torch.randint(len(STANDARD), input_ids.shape, generator=generator, device="cpu")
    inputs[to_random] = STANDARD[picks].to(device)[to_random]
    return inputs, labels


def mask_all_selected(input_ids: torch.Tensor, generator: torch.Generator,
                      select: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluation variant: every selected residue becomes ``<mask>`` (none is left as it
    was, which a model could simply copy), so the perplexity measures prediction alone."""
    candidates = residue_positions(input_ids)
    draw = torch.rand(input_ids.shape, generator=generator, device="cpu").to(input_ids.device)
    selected = candidates & (draw < select)
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE))
    inputs = input_ids.masked_fill(selected, MASK_ID)
    return inputs, labels
