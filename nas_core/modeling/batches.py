"""Batches: token ids per split (or cached features), length-sorted batches under a token cap,
padding, and one forward pass over a batch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nas_core.backbones.loading import encode
from nas_core.common.metric_names import IGNORE_INDEX
from nas_core.data.pair_splits import proteins_of
from nas_core.modeling.architecture import PAIR_LINKER

# Padded tokens per batch when nothing is trained (prediction, evaluation, caching): a cap
# that keeps long sequences from running out of memory.
EVAL_MAX_TOKENS = 16384


@dataclass
class Encoded:
    """A split ready for the model: token ids, or — for a frozen backbone whose pooled
    representations are cached — the pooled features; with the targets (class indices or
    standardised values)."""

    ids: list[np.ndarray]
    targets: np.ndarray
    features: np.ndarray | None = None  # (N, hidden) pooled representations
    # per-residue representations: (all tokens, hidden) and each row's start/end offsets
    residues: tuple[np.ndarray, np.ndarray] | None = None
    # pairs read by a shared encoder: each row's two indices into ``ids`` (then one entry per
    # protein, as are ``features`` and ``residues``: a protein in many pairs is there once)
    partners: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids) if self.partners is None else len(self.partners)

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per row (a pair: both partners')."""
        lengths = np.array([len(x) for x in self.ids])
        return lengths if self.partners is None else lengths[self.partners].sum(1)


def forward(model, data: Encoded, batch: np.ndarray, pad_id: int, device: torch.device
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, pooled) for the rows ``batch`` of ``data``; skips the backbone when the pooled
    features are given."""
    if data.partners is not None:
        return _forward_pairs(model, data, batch, pad_id, device)
    if data.features is not None:
        pooled = torch.from_numpy(data.features[batch]).to(device)
        return model.head(pooled), pooled
    tokens, mask = collate([data.ids[i] for i in batch], pad_id, device)
    if data.residues is not None:
        states = _residue_states(data, batch, tokens.shape[1])
        return model.from_states(states.to(device), tokens, mask)
    return model(tokens, mask)


def _residue_states(data: Encoded, rows, width: int) -> torch.Tensor:
    table, offsets = data.residues  # type: ignore[misc]
    states = torch.zeros((len(rows), width, table.shape[1]))
    for row, i in enumerate(rows):  # copied rows: the cache is a read-only memory map
        start, end = offsets[i], offsets[i + 1]
        states[row, : end - start] = torch.from_numpy(np.array(table[start:end]))
    return states


def _forward_pairs(model, data: Encoded, batch: np.ndarray, pad_id: int, device: torch.device
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of pairs through a shared encoder: each distinct protein of the batch is
    pooled once (from cached features, cached residues or the backbone), then each pair's
    two vectors are combined and read by the head."""
    rows = data.partners[batch]  # type: ignore[index]
    proteins, inverse = np.unique(rows, return_inverse=True)
    if data.features is not None:
        pooled = torch.from_numpy(np.asarray(data.features[proteins])).to(device)
    else:
        tokens, mask = collate([data.ids[i] for i in proteins], pad_id, device)
        if data.residues is not None:
            states = _residue_states(data, proteins, tokens.shape[1]).to(device)
            pooled = model.pool_states(states, tokens, mask)
        else:
            pooled = model.embed(tokens, mask)
    index = torch.as_tensor(inverse.reshape(rows.shape), device=pooled.device)
    combined = model.combine(pooled[index[:, 0]], pooled[index[:, 1]])
    return model.head(combined), combined


def batch_targets(data: Encoded, batch: np.ndarray, width: int, per_residue: bool,
                  device: torch.device) -> torch.Tensor:
    """The targets of ``batch``; per residue a (batch, width) tensor aligned with the padded
    token ids (residue i of a sequence is token i + 1, after <cls>), ``IGNORE_INDEX`` (or NaN)
    wherever nothing is to be learned."""
    if not per_residue:
        return torch.as_tensor(data.targets[batch], device=device)
    first = data.targets[batch[0]]
    fill = np.nan if first.dtype.kind == "f" else IGNORE_INDEX
    out = np.full((len(batch), width), fill, dtype=first.dtype)
    for row, i in enumerate(batch):
        target = data.targets[i]
        out[row, 1: 1 + len(target)] = target[: width - 1]
    return torch.from_numpy(out).to(device)


def encode_split(sequences: list[str], targets: np.ndarray, tokenizer,
                 partners: np.ndarray | None = None) -> Encoded:
    """Token ids of ``sequences`` with their targets; with ``partners`` the sequences are
    the distinct proteins and each row a pair of them."""
    return Encoded(encode(sequences, tokenizer), targets if targets.dtype == object
                   else np.asarray(targets), partners=partners)


def encode_rows(frame, task, arch, targets: np.ndarray, tokenizer) -> Encoded:
    """A table's rows ready for a model of ``arch``: each sequence, or for pairs each
    distinct protein once with the pairs pointing into them (a shared encoder) or each pair
    joined (a cross-encoder)."""
    if not task.per_pair:
        return encode_split(list(frame["sequence"]), targets, tokenizer)
    if arch.siamese:
        proteins, partners = proteins_of(frame)
        return encode_split(proteins, targets, tokenizer, partners)
    return encode_split(joined_pairs(frame), targets, tokenizer)


def joined_pairs(frame) -> list[str]:
    """Each pair of a table (``sequence``, ``sequence_2``) as one sequence, the partners
    joined by :data:`PAIR_LINKER`: what a cross-encoder reads."""
    return [a + PAIR_LINKER + b for a, b in zip(frame["sequence"], frame["sequence_2"])]


def effective_batch(batch_size: int, tokens_per_sequence: float,
                    min_tokens: int | None) -> int:
    """Sequences per batch once short sequences fill ``min_tokens`` (see :func:`length_batches`).
    """
    if not min_tokens:
        return batch_size
    return max(batch_size, int(min_tokens // max(1.0, tokens_per_sequence)))


def length_batches(lengths: np.ndarray, batch_size: int, *, max_tokens: int | None = None,
                   min_tokens: int | None = None,
                   rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Indices grouped by similar length, so padding stays small.

    Sequences are sorted by length (shuffled within equal lengths when ``rng`` is given), cut
    into batches of ``batch_size`` sequences, fewer when ``max_tokens`` padded tokens would be
    exceeded, more when they are so short that ``batch_size`` of them hold fewer than
    ``min_tokens`` (a step's fixed cost then buys more data); with ``rng`` the order of the
    batches is shuffled too.
    """
    order = np.arange(len(lengths))
    if rng is not None:
        order = rng.permutation(len(lengths))
    order = order[np.argsort(lengths[order], kind="stable")]
    batches, start = [], 0
    while start < len(order):
        end = min(start + batch_size, len(order))
        if min_tokens:
            cap = min(min_tokens, max_tokens or min_tokens)
            while end < len(order) and lengths[order[end]] * (end + 1 - start) <= cap:
                end += 1
        if max_tokens:
            while end - start > 1 and lengths[order[end - 1]] * (end - start) > max_tokens:
                end -= 1
        batches.append(order[start:end])
        start = end
    if rng is not None:
        rng.shuffle(batches)
    return batches


def collate(ids: list[np.ndarray], pad_id: int, device: torch.device
            ) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(x) for x in ids)
    tokens = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, x in enumerate(ids):
        tokens[i, : len(x)] = x
        mask[i, : len(x)] = 1
    pin = device.type == "cuda"
    t, m = torch.from_numpy(tokens), torch.from_numpy(mask)
    if pin:
        t, m = t.pin_memory(), m.pin_memory()
    return t.to(device, non_blocking=pin), m.to(device, non_blocking=pin)
