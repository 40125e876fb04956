"""Held-out perplexity with every selected residue masked (none left as it was, which a
model could copy), beside the perplexity of amino-acid frequencies alone on the same
positions: a model that learnt nothing scores the unigram perplexity."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from nas_core.modeling.training import autocast
from nas_core.pretraining.batches import PAD_ID, collate, epoch_batches
from nas_core.pretraining.corpus import Corpus
from nas_core.pretraining.masking import IGNORE, mask_all_selected

EVAL_SEED = 12345  # the same positions are scored at every measurement


@dataclass(frozen=True)
class Perplexity:
    model: float
    unigram: float
    positions: int

    @property
    def ratio(self) -> float:
        """Model over unigram: below 1 the model predicts better than frequencies alone."""
        return self.model / self.unigram


def scored_subset(corpus: Corpus, rows: np.ndarray, residues: int, max_length: int
                  ) -> np.ndarray:
    """The first validation proteins holding about ``residues`` residues (crops counted)."""
    crops = np.minimum(corpus.lengths()[rows], max_length)
    keep = int(np.searchsorted(np.cumsum(crops), residues)) + 1
    return rows[:keep]


def unigram_log_probs(counts: np.ndarray) -> torch.Tensor:
    """Log-frequencies of the residue tokens in the training proteins (add-one smoothed)."""
    return torch.log(torch.as_tensor(counts + 1.0) / float(counts.sum() + len(counts)))


@torch.inference_mode()
def held_out_perplexity(model, valid: Corpus, *, unigram: torch.Tensor, max_length: int,
                        batch_tokens: int, device: torch.device, select: float = 0.15
                        ) -> Perplexity:
    """Perplexity over the selected residues of ``valid`` (each protein's first crop; the same
    positions every time)."""
    model.eval()
    batches = epoch_batches(valid.lengths(), epoch=0, seed=EVAL_SEED, max_length=max_length,
                            batch_tokens=batch_tokens)
    generator = torch.Generator().manual_seed(EVAL_SEED)
    total = total_unigram = 0.0
    count = 0
    for batch in sorted(batches, key=lambda b: int(b.rows[0])):  # a fixed order: fixed masks
        ids = collate(valid, replace(batch, starts=np.zeros_like(batch.starts)))
        inputs, labels = mask_all_selected(ids, generator, select)
        inputs, labels = inputs.to(device), labels.to(device)
        with autocast(device):
            logits = model(input_ids=inputs, attention_mask=(inputs != PAD_ID).long()).logits
        keep = labels != IGNORE
        if not keep.any():
            continue
        total += float(F.cross_entropy(logits[keep].float(), labels[keep], reduction="sum"))
        total_unigram += float(-unigram.to(device)[labels[keep]].sum())
        count += int(keep.sum())
    model.train()
    if not count:
        raise ValueError("no residue of the validation proteins was selected: the validation "
                         "set is too small.")
    return Perplexity(math.exp(total / count), math.exp(total_unigram / count), count)
