"""How fast this machine pretrains a backbone: a few real optimiser steps on random residues
of the run's crop length and batch size, for the time estimate shown before starting."""

from __future__ import annotations

import time

import torch

from nas_core.modeling.training import autocast, resolve_device
from nas_core.pretraining.batches import PAD_ID
from nas_core.pretraining.config import PretrainConfig
from nas_core.pretraining.loop import initial_model
from nas_core.pretraining.masking import mask_tokens


def tokens_per_second(config: PretrainConfig, *, steps: int = 2) -> float:
    """Training tokens per second of ``config``'s model (a warm-up step, then ``steps``)."""
    device = resolve_device(config.device)
    model = initial_model(config)
    model.to(device)  # type: ignore[arg-type]  # transformers types .to oddly
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    rows = max(1, config.batch_tokens // (config.max_length + 2))
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, 24, (rows, config.max_length + 2), generator=generator)
    ids[:, 0], ids[:, -1] = 0, 2
    seconds = 0.0
    for step in range(steps + 1):
        inputs, labels = mask_tokens(ids, generator)
        started = time.perf_counter()
        with autocast(device):
            loss = model(input_ids=inputs.to(device),
                         attention_mask=(inputs != PAD_ID).long().to(device),
                         labels=labels.to(device)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step:  # the first step pays for allocations
            seconds += time.perf_counter() - started
    return rows * (config.max_length + 2) * steps / max(seconds, 1e-9)
