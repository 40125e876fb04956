"""Training and evaluation of one candidate: length-sorted batches, early stopping, per-epoch
metrics, bf16 autocast on CUDA. Knows nothing about Optuna: the trial hooks in through
``on_epoch``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from nas_core.backbones import encode
from nas_core.metrics import DIRECTIONS, compute_metrics, objective_value
from nas_core.model import SequencePredictor, trainable_state


class TrainingCancelled(Exception):
    """The user stopped the search; raised between epochs."""


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' asked for, but no CUDA GPU is available here: use "
                         "--device cpu or auto.")
    return torch.device(device)


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# -- batches --------------------------------------------------------------------------------
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

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(x) for x in self.ids])


def forward(model, data: Encoded, batch: np.ndarray, pad_id: int, device: torch.device
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, pooled) for the rows ``batch`` of ``data``; skips the backbone when the pooled
    features are given."""
    if data.features is not None:
        pooled = torch.from_numpy(data.features[batch]).to(device)
        return model.head(pooled), pooled
    tokens, mask = collate([data.ids[i] for i in batch], pad_id, device)
    if data.residues is not None:
        table, offsets = data.residues
        states = torch.zeros((len(batch), tokens.shape[1], table.shape[1]))
        for row, i in enumerate(batch):
            start, end = offsets[i], offsets[i + 1]
            states[row, : end - start] = torch.from_numpy(np.asarray(table[start:end]))
        pooled = model.pool_states(states.to(device), tokens, mask)
        return model.head(pooled), pooled
    return model(tokens, mask)


def encode_split(sequences: list[str], targets: np.ndarray, tokenizer) -> Encoded:
    return Encoded(encode(sequences, tokenizer), np.asarray(targets))


def length_batches(lengths: np.ndarray, batch_size: int, *, max_tokens: int | None = None,
                   rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Indices grouped by similar length, so padding stays small.

    Sequences are sorted by length (shuffled within equal lengths when ``rng`` is given), cut
    into batches of at most ``batch_size`` sequences and ``max_tokens`` padded tokens; with
    ``rng`` the order of the batches is shuffled too.
    """
    order = np.arange(len(lengths))
    if rng is not None:
        order = rng.permutation(len(lengths))
    order = order[np.argsort(lengths[order], kind="stable")]
    batches, start = [], 0
    while start < len(order):
        end = min(start + batch_size, len(order))
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


# -- losses -------------------------------------------------------------------------------
def supervised_contrastive(embeddings: torch.Tensor, groups: torch.Tensor,
                           temperature: float) -> torch.Tensor:
    """SupCon (Khosla et al. 2020): pull same-group embeddings together, push others apart."""
    z = F.normalize(embeddings.float(), dim=-1)
    logits = z @ z.T / temperature
    n = len(z)
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, -1e9)
    positives = (groups[:, None] == groups[None, :]) & ~self_mask
    has_pos = positives.any(1)
    if not has_pos.any():
        return embeddings.sum() * 0.0
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    mean_pos = (log_prob * positives).sum(1) / positives.sum(1).clamp(min=1)
    return -mean_pos[has_pos].mean()


def contrastive_groups(task: str, targets: np.ndarray, edges: np.ndarray | None) -> np.ndarray:
    if task == "regression":
        return np.digitize(targets, edges) if edges is not None else np.zeros(len(targets))
    return targets


def task_loss(task: str, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if task == "regression":
        return F.mse_loss(logits.squeeze(-1).float(), targets.float())
    return F.cross_entropy(logits.float(), targets.long())


# -- evaluation -----------------------------------------------------------------------------
@torch.inference_mode()
def predict_outputs(model: SequencePredictor, data: Encoded | list[np.ndarray], *,
                    device: torch.device, pad_id: int, batch_size: int = 64,
                    max_tokens: int = 16384,
                    progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Probabilities (classification) or values in label units (regression), input order."""
    if not isinstance(data, Encoded):
        data = Encoded(list(data), np.zeros(len(data)))
    model.eval()
    out: np.ndarray | None = None
    done = 0
    for batch in length_batches(data.lengths, batch_size, max_tokens=max_tokens):
        with autocast(device):
            logits, _ = forward(model, data, batch, pad_id, device)
        logits = logits.float()
        if model.info.task == "regression":
            values = logits.squeeze(-1) * model.info.target_std + model.info.target_mean
            result = values.cpu().numpy()[:, None]
        else:
            result = torch.softmax(logits, dim=-1).cpu().numpy()
        if out is None:
            out = np.zeros((len(data), result.shape[1]), dtype=np.float64)
        out[batch] = result
        done += len(batch)
        if progress:
            progress(done, len(data))
    assert out is not None
    return out[:, 0] if model.info.task == "regression" else out


def evaluate(model: SequencePredictor, data: Encoded, *, device: torch.device, pad_id: int,
             raw_targets: np.ndarray) -> tuple[dict, np.ndarray]:
    output = predict_outputs(model, data, device=device, pad_id=pad_id)
    return compute_metrics(model.info.task, raw_targets, output), output


# -- training -------------------------------------------------------------------------------
@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_mae: float
    val: dict
    seconds: float

    def flat(self) -> dict:
        row = {"epoch": self.epoch, "train_loss": self.train_loss, "train_mae": self.train_mae,
               "seconds": round(self.seconds, 3)}
        row.update({f"val_{k}": v for k, v in self.val.items()})
        return row


@dataclass
class TrainResult:
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    best_val: dict = field(default_factory=dict)
    best_state: dict = field(default_factory=dict)
    stopped_early: bool = False


def train(model: SequencePredictor, train_data: Encoded, val_data: Encoded, *,
          val_targets_raw: np.ndarray, metric: str, device: torch.device, pad_id: int,
          seed: int = 0, patience: int = 3, max_tokens: int | None = None,
          on_epoch: Callable[[EpochRecord], None] | None = None,
          should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Train with early stopping on the validation ``metric``; keep the best epoch's weights.

    ``on_epoch`` runs after each epoch (Optuna reports and prunes there by raising);
    ``should_stop`` is polled between epochs and raises :class:`TrainingCancelled`.
    """
    arch, task = model.arch, model.info.task
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=arch.lr, weight_decay=arch.weight_decay)
    lengths = train_data.lengths
    edges = (np.quantile(train_data.targets, [0.25, 0.5, 0.75])
             if task == "regression" else None)
    groups_all = contrastive_groups(task, train_data.targets, edges)
    sign = 1.0 if DIRECTIONS[metric] == "maximize" else -1.0
    result = TrainResult()
    best_score, waited = -math.inf, 0
    for epoch in range(1, arch.max_epochs + 1):
        if should_stop and should_stop():
            raise TrainingCancelled(f"stopped by the user before epoch {epoch}")
        started = time.perf_counter()
        model.train()
        if arch.adaptation == "frozen" and getattr(model, "esm", None) is not None:
            model.esm.eval()  # no dropout in a frozen backbone
        total_loss = total_mae = 0.0
        seen = 0
        for batch in length_batches(lengths, arch.batch_size, max_tokens=max_tokens, rng=rng):
            targets = torch.as_tensor(train_data.targets[batch], device=device)
            with autocast(device):
                logits, pooled = forward(model, train_data, batch, pad_id, device)
            supervised = task_loss(task, logits, targets)
            loss = supervised
            if arch.contrastive_weight > 0 and len(batch) > 1:
                groups = torch.as_tensor(groups_all[batch], device=device)
                loss = loss + arch.contrastive_weight * supervised_contrastive(
                    pooled, groups, arch.temperature)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the training loss became {loss.item()} at epoch "
                                         f"{epoch} (learning rate {arch.lr:.1e} is likely too "
                                         "high)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            with torch.no_grad():
                # curves show the task loss in label units, comparable with validation
                scale = model.info.target_std ** 2 if task == "regression" else 1.0
                total_loss += supervised.item() * scale * len(batch)
                total_mae += _batch_mae(task, logits.float(), targets, model) * len(batch)
            seen += len(batch)
        val, _ = evaluate(model, val_data, device=device, pad_id=pad_id,
                          raw_targets=val_targets_raw)
        record = EpochRecord(epoch, total_loss / seen, total_mae / seen, val,
                             time.perf_counter() - started)
        result.history.append(record)
        score = sign * objective_value(val, metric)
        if score > best_score:
            best_score, waited = score, 0
            result.best_epoch, result.best_val = epoch, val
            result.best_state = trainable_state(model)
        else:
            waited += 1
        if on_epoch:
            on_epoch(record)
        if waited >= patience:
            result.stopped_early = True
            break
    return result


def _batch_mae(task: str, logits: torch.Tensor, targets: torch.Tensor, model) -> float:
    if task == "regression":
        return float((logits.squeeze(-1) - targets).abs().mean() * model.info.target_std)
    probs = torch.softmax(logits, dim=-1)
    onehot = F.one_hot(targets.long(), probs.shape[-1]).float()
    return float((probs - onehot).abs().mean())
