"""Pooled representations of frozen backbones, computed once and reused.

A frozen backbone gives the same representation of a sequence in every trial, so trials with
a frozen backbone never run it again: one forward pass of the full backbone yields every
layer's hidden states, from which the mean- and CLS-pooled representation of *each depth* is
kept (exactly what the backbone cut to that depth would produce: ESM's final layer norm is
applied to the layer's output before pooling). Stored in the workspace per (backbone, the
exact sequences), reused across trials, studies and restarts, evicted oldest-first by size.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from nas_core.backbones.loading import encode, load_backbone
from nas_core.backbones.registry import resolve
from nas_core.common.workspace import subdir
from nas_core.modeling.batches import EVAL_MAX_TOKENS, collate, length_batches
from nas_core.modeling.training import autocast

POOLINGS = ("mean", "cls")
DEFAULT_MAX_BYTES = int(float(os.environ.get("ESM_NAS_CACHE_GB", "8")) * 2**30)


def _weights_signature(source: str) -> str:
    """Changes when a local checkpoint's weights change (hub ids are immutable per name)."""
    path = Path(source)
    if not path.is_dir():
        return source
    parts = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
             for p in sorted(path.glob("*.safetensors"))]
    return source + "|" + ",".join(parts)



def _reserve(path: Path) -> None:
    """Claim the disk space of a memory-mapped file now: writing into the pages of a sparse
    file on a full disk kills the process (SIGBUS); this raises ``OSError(ENOSPC)`` instead."""
    with open(path, "r+b") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                return  # the file system cannot reserve space: nothing more to do
            raise OSError(exc.errno, exc.strerror, str(path)) from None


class RepresentationCache:
    def __init__(self, root=None, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.dir = subdir("cache", root)
        self.max_bytes = max_bytes
        self.hits = self.misses = 0

    def key(self, backbone: str, sequences: list[str]) -> str:
        digest = hashlib.sha256(_weights_signature(resolve(backbone).source).encode())
        for seq in sequences:
            digest.update(seq.encode())
            digest.update(b"\n")
        return digest.hexdigest()[:32]

    def pooled(self, backbone: str, sequences: list[str], layers: list[int], *,
               device: torch.device, max_tokens: int = EVAL_MAX_TOKENS) -> dict[tuple[str, int],
                                                                      np.ndarray]:
        """{(pooling, depth): (N, hidden) float32} for every depth in ``layers``."""
        folder = self.dir / self.key(backbone, sequences)
        wanted = [(p, k) for p in POOLINGS for k in layers]
        missing = [(p, k) for p, k in wanted if not (folder / f"{p}_{k:03d}.npy").exists()]
        if missing:
            self.misses += 1
            self._compute(backbone, sequences, sorted({k for _, k in missing}), folder,
                          device=device, max_tokens=max_tokens)
            self.evict(keep=folder)
        else:
            self.hits += 1
        os.utime(folder)  # least recently used goes first
        return {(p, k): np.load(folder / f"{p}_{k:03d}.npy", mmap_mode="r")
                for p, k in wanted}

    def residues(self, backbone: str, sequences: list[str], layer: int, *,
                 device: torch.device, max_tokens: int = EVAL_MAX_TOKENS) -> tuple[np.ndarray,
                                                                         np.ndarray]:
        """Per-residue representations of one depth, for heads that pool themselves
        (attention pooling): ``(states (all tokens, hidden), offsets (N + 1,))``, row i's
        tokens (``<cls>`` ... ``<eos>``) being ``states[offsets[i]:offsets[i + 1]]``."""
        folder = self.dir / self.key(backbone, sequences)
        path = folder / f"residues_{layer:03d}.npy"
        if not path.exists():
            self.misses += 1
            self._compute(backbone, sequences, [layer], folder, device=device,
                          max_tokens=max_tokens, residue_layer=layer)
            self.evict(keep=folder)
        else:
            self.hits += 1
        os.utime(folder)
        offsets = np.load(folder / "offsets.npy")
        return np.load(path, mmap_mode="r"), offsets

    @torch.inference_mode()
    def _compute(self, backbone: str, sequences: list[str], layers: list[int], folder: Path,
                 *, device: torch.device, max_tokens: int,
                 residue_layer: int | None = None) -> None:
        model, tokenizer = load_backbone(backbone, n_layers=max(layers))
        model.contact_head = None
        model.to(device).eval()
        depth = len(model.encoder.layer)
        final_norm = model.encoder.emb_layer_norm_after
        ids = encode(sequences, tokenizer)
        hidden = model.config.hidden_size
        lengths = np.array([len(x) for x in ids])
        offsets = np.concatenate(([0], np.cumsum(lengths)))
        folder.mkdir(parents=True, exist_ok=True)

        def scratch(name: str, rows: int) -> np.memmap:
            # written straight to disk: 30+ layers of a large backbone need not fit in RAM
            path = folder / f".{name}.{os.getpid()}.npy"
            array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                              shape=(rows, hidden))
            _reserve(path)
            return array

        try:
            out = {(p, k): scratch(f"{p}_{k:03d}", len(ids)) for p in POOLINGS for k in layers}
            table = (scratch(f"residues_{residue_layer:03d}", int(offsets[-1]))
                     if residue_layer is not None else None)
        except OSError:
            for path in folder.glob(f".*.{os.getpid()}.npy"):
                path.unlink(missing_ok=True)
            raise
        eos = tokenizer.eos_token_id
        for batch in length_batches(lengths, 64, max_tokens=max_tokens):
            tokens, mask = collate([ids[i] for i in batch], tokenizer.pad_token_id, device)
            with autocast(device):
                states = model(input_ids=tokens, attention_mask=mask,
                               output_hidden_states=True).hidden_states
            residues = mask.bool() & (tokens != eos)
            residues[:, 0] = False
            weights = residues.float().unsqueeze(-1)
            for k in layers:
                # hidden_states[k] is layer k's output; the last entry is already normed
                h = (states[k] if k == depth else final_norm(states[k])).float()
                out[("cls", k)][batch] = h[:, 0].cpu().numpy()
                out[("mean", k)][batch] = ((h * weights).sum(1) / weights.sum(1).clamp(
                    min=1.0)).cpu().numpy()
                if k == residue_layer and table is not None:
                    rows = h.cpu().numpy()
                    for row, i in enumerate(batch):
                        table[offsets[i]:offsets[i + 1]] = rows[row, : lengths[i]]
        _save_atomic(folder / "offsets.npy", offsets)
        finished = list(out.values()) + ([table] if table is not None else [])
        for array in finished:
            array.flush()
            path = Path(str(array.filename))
            # readers never see half a file: the final name appears only when complete
            path.replace(folder / (path.name[1:].split(".")[0] + ".npy"))

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.rglob("*.npy"))

    def evict(self, keep: Path | None = None) -> None:
        """Remove least recently used entries until the cache fits ``max_bytes``."""
        entries = sorted((p for p in self.dir.iterdir() if p.is_dir() and p != keep),
                         key=lambda p: p.stat().st_mtime)
        total = self.size_bytes()
        for folder in entries:
            if total <= self.max_bytes:
                break
            size = sum(p.stat().st_size for p in folder.glob("*.npy"))
            shutil.rmtree(folder, ignore_errors=True)
            total -= size


def _save_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.npy")
    np.save(tmp, array)
    tmp.replace(path)  # readers never see half a file


def cached_trial_possible(arch) -> bool:
    return arch.adaptation == "frozen"
