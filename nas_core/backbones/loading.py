"""One loading path for every ESM-2 backbone.

Hub ids and local directories go through the same ``transformers`` ``from_pretrained`` call
(honouring the Hugging Face cache and ``HF_HUB_OFFLINE``). ``make_tiny_backbone`` writes a
random-weight checkpoint of the real ESM-2 shape, so tests and the offline demo exercise exactly
the code a real checkpoint goes through."""

from __future__ import annotations

import functools
import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import transformers

# Imported eagerly, under Python's import lock: transformers' lazy attribute loading is not
# thread-safe, and the app's script threads and search threads would otherwise race on it.
from transformers import EsmConfig, EsmForMaskedLM, EsmModel, EsmTokenizer

from nas_core.backbones.registry import (
    ESM2_VOCAB,
    UNTRAINED_FLAG,
    BackboneSpec,
    BackboneUnavailable,
    resolve,
)


def load_backbone(source: str, *, n_layers: int | None = None, attn_implementation: str = "sdpa"):
    """Load ``EsmModel`` (no pooler) and its tokenizer, truncated to ``n_layers`` if given."""
    from huggingface_hub.errors import HfHubHTTPError

    spec = resolve(source)
    if not Path(spec.source).exists():
        _check_reachable(spec.source)
    transformers.logging.set_verbosity_error()  # "some weights not used" is expected: no LM head
    transformers.logging.disable_progress_bar()
    try:
        # use_kernels=False: transformers 5 otherwise swaps layers for kernels fetched from the
        # Hub when the model first trains on a GPU (code from the network, and a failed trial
        # offline: "kernels-community/rotary is not available in the local cache")
        model = EsmModel.from_pretrained(spec.source, add_pooling_layer=False,
                                         attn_implementation=attn_implementation,
                                         use_kernels=False)
        tokenizer = EsmTokenizer.from_pretrained(spec.source)
    except (OSError, HfHubHTTPError, ValueError) as exc:
        where = "offline mode is on (HF_HUB_OFFLINE)" if _offline() else \
            "the Hugging Face Hub could not be reached"
        if Path(spec.source).exists():
            raise BackboneUnavailable(
                f"could not load the checkpoint in {spec.source}: {exc}") from exc
        raise BackboneUnavailable(
            f"could not load {spec.source}: {where} and it is not in the local cache "
            f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}). On a machine with internet, "
            f"run `hf download {spec.source} --local-dir DIR`, copy DIR here and use DIR as the "
            "backbone."
        ) from exc
    finally:
        transformers.logging.set_verbosity_warning()
    if n_layers is not None:
        truncate(model, n_layers)
    return model, tokenizer


def ensure_loadable(name_or_path: str) -> BackboneSpec:
    """Fail before a search starts, with the fix, when a backbone can be neither read locally
    nor downloaded (instead of failing every trial that picks it)."""
    spec = resolve(name_or_path)
    if not Path(spec.source).exists():
        _check_reachable(spec.source)
    return spec


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "", "false", "no")


def _check_reachable(repo_id: str) -> None:
    """Fail in seconds, not after minutes of retries, when an uncached model cannot be fetched."""
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return  # cached: from_pretrained works offline
    cache = constants.HF_HUB_CACHE
    advice = (f"On a machine with internet, run `hf download {repo_id} --local-dir DIR`, copy "
              "DIR here and use DIR as the backbone.")
    if _offline():
        raise BackboneUnavailable(f"{repo_id} is not in the local Hugging Face cache ({cache}) "
                                  f"and offline mode is on (HF_HUB_OFFLINE). {advice}")
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https"
                                                               else 80)), timeout=5).close()
    except OSError as exc:
        raise BackboneUnavailable(
            f"{repo_id} is not in the local Hugging Face cache ({cache}) and the Hub "
            f"({constants.ENDPOINT}) cannot be reached: {exc}. {advice}") from None


def truncate(model, n_layers: int):
    """Keep the first ``n_layers`` transformer layers, in place; the result saves and reloads.

    ESM's contact head reads every layer's attention maps, so its input width is
    layers x heads: it is sliced to the kept layers, and the config follows.
    """
    total = len(model.encoder.layer)
    if not 1 <= n_layers <= total:
        raise ValueError(f"n_layers must be between 1 and {total}, not {n_layers}.")
    if n_layers == total:
        return model
    model.encoder.layer = model.encoder.layer[:n_layers]
    model.config.num_hidden_layers = n_layers
    head = getattr(model, "contact_head", None)
    if head is not None:
        keep = n_layers * model.config.num_attention_heads
        old = head.regression
        new = torch.nn.Linear(keep, 1, bias=old.bias is not None).to(old.weight.device,
                                                                     old.weight.dtype)
        with torch.no_grad():
            new.weight.copy_(old.weight[:, :keep])
            if old.bias is not None:
                new.bias.copy_(old.bias)
        head.regression = new
        head.in_features = keep
    return model


def esm2_config(*, layers: int, hidden: int, heads: int, intermediate: int | None = None,
                **extra) -> EsmConfig:
    """ESM-2's architecture at any size: rotary positions, pre-layer-norm, token dropout, no
    dropout, tied input and output embeddings, ESM-2's vocabulary."""
    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads}).")
    return EsmConfig(  # type: ignore[call-arg]  # EsmConfig takes any extra field
        vocab_size=len(ESM2_VOCAB), hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=intermediate or 4 * hidden,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, hidden_act="gelu",
        max_position_embeddings=1026, position_embedding_type="rotary", layer_norm_eps=1e-5,
        emb_layer_norm_before=False, token_dropout=True, mask_token_id=32, pad_token_id=1,
        tie_word_embeddings=True, architectures=["EsmForMaskedLM"], **extra)


def make_tiny_backbone(directory: str | os.PathLike[str], *, layers: int = 2, hidden: int = 32,
                       heads: int = 4, intermediate: int | None = None, seed: int = 0) -> Path:
    """Write a random-weight ESM-2-shaped checkpoint (``EsmForMaskedLM``, safetensors).

    It loads through exactly the same ``from_pretrained`` path as a real ESM-2 checkpoint; its
    config carries ``esm_nas_untrained: true`` so the app labels it as an untrained demo.
    """
    config = esm2_config(layers=layers, hidden=hidden, heads=heads, intermediate=intermediate,
                         **{UNTRAINED_FLAG: True})
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = EsmForMaskedLM(config)
    model.save_pretrained(directory, safe_serialization=True)
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(ESM2_VOCAB))
    EsmTokenizer(str(vocab)).save_pretrained(directory)
    return directory


@functools.lru_cache(maxsize=1)
def esm2_tokenizer() -> EsmTokenizer:
    """The ESM-2 tokenizer (every ESM-2 checkpoint shares this vocabulary)."""
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "vocab.txt"
        vocab.write_text("\n".join(ESM2_VOCAB))
        return EsmTokenizer(str(vocab))


def encode(sequences: list[str], tokenizer) -> list[np.ndarray]:
    """Token ids with <cls> ... <eos>, vectorised (ESM's tokenizer is one char per token)."""
    vocab = tokenizer.get_vocab()
    table = np.full(128, vocab["<unk>"], dtype=np.int64)
    for token, idx in vocab.items():
        if len(token) == 1:
            table[ord(token)] = idx
    cls, eos = vocab["<cls>"], vocab["<eos>"]
    out = []
    for seq in sequences:
        codes = np.frombuffer(seq.encode("ascii"), dtype=np.uint8)
        out.append(np.concatenate(([cls], table[codes], [eos])))
    return out
