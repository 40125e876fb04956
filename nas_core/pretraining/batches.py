"""Batches for pretraining, filled to a token budget: each epoch crops the long proteins at a
random place, sorts the crops by length so that a batch pads little, and shuffles the order of
the batches. Everything is drawn from (seed, epoch), so a resumed run sees the same batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nas_core.backbones.registry import ESM2_VOCAB
from nas_core.pretraining.corpus import Corpus

CLS_ID, EOS_ID, PAD_ID = (ESM2_VOCAB.index(t) for t in ("<cls>", "<eos>", "<pad>"))


@dataclass(frozen=True)
class Batch:
    rows: np.ndarray  # corpus rows
    starts: np.ndarray  # each row's crop start
    width: int  # residues of the longest crop

    @property
    def padded_tokens(self) -> int:
        return len(self.rows) * (self.width + 2)


def epoch_batches(lengths: np.ndarray, *, epoch: int, seed: int, max_length: int,
                  batch_tokens: int) -> list[Batch]:
    """The batches of one pass over the corpus (``lengths`` in residues)."""
    rng = np.random.default_rng([seed, epoch])
    lengths = np.asarray(lengths)
    crops = np.minimum(lengths, max_length)
    starts = rng.integers(0, lengths - crops + 1)
    order = np.lexsort((rng.random(len(lengths)), crops))  # by length, ties at random
    batches: list[Batch] = []
    current: list[int] = []
    width = 0
    for row in order:
        grown = max(width, int(crops[row]))
        if current and (len(current) + 1) * (grown + 2) > batch_tokens:
            batches.append(Batch(np.array(current), starts[current], width))
            current, grown = [], int(crops[row])
        current.append(int(row))
        width = grown
    if current:
        batches.append(Batch(np.array(current), starts[current], width))
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(corpus: Corpus, batch: Batch) -> torch.Tensor:
    """Token ids (rows, width + 2): ``<cls>``, the crop, ``<eos>``, then padding."""
    out = np.full((len(batch.rows), batch.width + 2), PAD_ID, dtype=np.int64)
    for i, (row, start) in enumerate(zip(batch.rows, batch.starts)):
        crop = corpus.sequence(int(row))[start: start + batch.width]
        out[i, 0] = CLS_ID
        out[i, 1: 1 + len(crop)] = crop
        out[i, 1 + len(crop)] = EOS_ID
    return torch.from_numpy(out)
