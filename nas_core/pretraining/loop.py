"""The pretraining loop: ESM-2's recipe on a corpus, with checkpoints to resume from.

AdamW (betas 0.9/0.98, ESM-2's) with a linear warm-up and a linear decay to a tenth of the
peak, gradient clipping, bf16 autocast and SDPA attention on a GPU; batches filled to a token
budget; the held-out perplexity measured ``eval_points`` times (the curve). A kill loses at
most the steps since the last checkpoint: the run resumes at the same step, with the same
batches and masks."""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import EsmForMaskedLM

from nas_core.backbones.loading import esm2_config
from nas_core.backbones.registry import resolve
from nas_core.modeling.training import TrainingCancelled, autocast, resolve_device
from nas_core.pretraining.batches import PAD_ID, collate, epoch_batches
from nas_core.pretraining.config import PretrainConfig, parse_shape
from nas_core.pretraining.corpus import Corpus
from nas_core.pretraining.evaluation import (
    Perplexity,
    held_out_perplexity,
    scored_subset,
    unigram_log_probs,
)
from nas_core.pretraining.holdout import Holdout
from nas_core.pretraining.masking import MaskingRecipe, mask_tokens

STATE_DIR = ".pretraining"  # inside the output folder: the checkpoint and the split
CHECKPOINT_SECONDS = 600.0  # at least this often, besides every measurement
MAX_WARMUP_STEPS = 2000


@dataclass
class Position:
    """Where a run is: resumed from here, the same batches and masks follow."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # index within the epoch's batches
    tokens: int = 0  # tokens trained on (not padding)
    seconds: float = 0.0  # training time so far, over every session


@dataclass
class Progress:
    """What a run reports after each step (the Monitor's bar and curve)."""

    position: Position
    budget: int
    loss: float
    tokens_per_second: float

    @property
    def fraction(self) -> float:
        return min(1.0, self.position.tokens / self.budget)

    @property
    def eta_seconds(self) -> float | None:
        if self.tokens_per_second <= 0:
            return None
        return max(0.0, (self.budget - self.position.tokens) / self.tokens_per_second)


@dataclass
class History:
    """The curve: training loss every few steps, held-out perplexity at each measurement."""

    train: list[dict[str, float]] = field(default_factory=list)
    valid: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"train": self.train, "valid": self.valid}


def initial_model(config: PretrainConfig) -> EsmForMaskedLM:
    """Random weights of the shape, or the backbone to continue (with its LM head)."""
    if config.shape is not None:
        layers, hidden, heads, ffn = parse_shape(config.shape)
        torch.manual_seed(config.seed)
        return EsmForMaskedLM(esm2_config(layers=layers, hidden=hidden, heads=heads,
                                          intermediate=ffn))
    spec = resolve(config.base or "")
    return EsmForMaskedLM.from_pretrained(spec.source, attn_implementation="sdpa",
                                          use_kernels=False)


def schedule(total_steps: int, warmup: float) -> Callable[[int], float]:
    """The learning-rate multiplier at each step: linear warm-up, then linear decay to 0.1."""
    warm = max(1, min(MAX_WARMUP_STEPS, int(warmup * total_steps)))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        done = min(1.0, (step - warm) / max(1, total_steps - warm))
        return 1.0 - 0.9 * done
    return factor


class Run:
    """One pretraining run over a corpus split into training and validation proteins."""

    def __init__(self, config: PretrainConfig, corpus: Corpus, holdout: Holdout,
                 state_dir: Path) -> None:
        self.config, self.corpus, self.holdout = config, corpus, holdout
        self.state_dir = state_dir
        self.device = resolve_device(config.device)
        self.train = corpus.subset(holdout.train)
        # the validation proteins scored at each measurement, copied out once
        self.valid = corpus.subset(scored_subset(corpus, holdout.valid, config.eval_residues,
                                                 config.max_length))
        self.unigram = unigram_log_probs(self.train.residue_counts())
        checkpoint = state_dir / "checkpoint"
        # loaded once: the last checkpoint's weights when there is one to resume from
        self.model = (EsmForMaskedLM.from_pretrained(checkpoint, attn_implementation="sdpa",
                                                     use_kernels=False)
                      if (checkpoint / "position.json").is_file() else initial_model(config))
        self.model.to(self.device)  # type: ignore[arg-type]  # transformers types .to oddly
        self.model.train()
        decay = [p for n, p in self.model.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in self.model.named_parameters() if p.ndim < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.98),
            eps=1e-8)
        self.total_steps = self.estimate_steps()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, schedule(self.total_steps, config.warmup))
        self.position = Position()
        self.history = History()
        self.recipe = MaskingRecipe(select=config.select)

    # -- budget ------------------------------------------------------------------------------
    def estimate_steps(self) -> int:
        """Optimiser steps the token budget buys (from the first epoch's batches)."""
        batches = self.batches(0)
        tokens = sum(int(np.minimum(self.train.lengths()[b.rows], b.width).sum())
                     + 2 * len(b.rows) for b in batches)
        return max(1, math.ceil(self.config.tokens * len(batches) / max(tokens, 1)))

    def batches(self, epoch: int):
        return epoch_batches(self.train.lengths(), epoch=epoch, seed=self.config.seed,
                             max_length=self.config.max_length,
                             batch_tokens=self.config.batch_tokens)

    def eval_due(self, before: int) -> bool:
        """Whether a measurement point of the budget was passed by the last step."""
        every = self.config.tokens / self.config.eval_points
        return int(self.position.tokens // every) > int(before // every)

    # -- the loop ----------------------------------------------------------------------------
    def run(self, *, progress: Callable[[Progress, Run], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> Perplexity:
        """Train until the budget is spent; returns the final held-out perplexity."""
        if not self.history.valid:  # the curve starts where the weights start
            self.measure()
        last_saved = time.monotonic()
        started, tokens_then = time.monotonic(), self.position.tokens
        while self.position.tokens < self.config.tokens:
            batches = self.batches(self.position.epoch)
            while self.position.batch < len(batches):
                if should_stop and should_stop():
                    self.save()
                    raise TrainingCancelled(f"stopped at step {self.position.step}; the run "
                                            "resumes from there")
                before = self.position.tokens
                loss = self.step(batches[self.position.batch])
                rate = (self.position.tokens - tokens_then) / max(
                    time.monotonic() - started, 1e-9)
                if progress:
                    progress(Progress(self.position, self.config.tokens, loss, rate), self)
                finished = self.position.tokens >= self.config.tokens
                if self.eval_due(before) or finished:
                    self.measure()
                    self.save()
                    last_saved = time.monotonic()
                elif time.monotonic() - last_saved > CHECKPOINT_SECONDS:
                    self.save()
                    last_saved = time.monotonic()
                if finished:
                    return self.last_measurement()
            self.position.epoch += 1
            self.position.batch = 0
        return self.last_measurement()

    def last_measurement(self) -> Perplexity:
        row = self.history.valid[-1]
        return Perplexity(row["model"], row["unigram"], int(row["positions"]))

    def step(self, batch) -> float:
        """One optimiser step on ``batch``; the masks are drawn from (seed, step)."""
        started = time.perf_counter()
        ids = collate(self.train, batch)
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003
                                                  + self.position.step)
        inputs, labels = mask_tokens(ids, generator, self.recipe)
        inputs, labels = inputs.to(self.device), labels.to(self.device)
        with autocast(self.device):
            out = self.model(input_ids=inputs, attention_mask=(inputs != PAD_ID).long(),
                             labels=labels)
        loss = out.loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the pretraining loss became {loss.item()} at step "
                                     f"{self.position.step}: lower the learning rate.")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip)
        self.optimizer.step()
        self.scheduler.step()
        self.position.step += 1
        self.position.batch += 1
        self.position.tokens += int((ids != PAD_ID).sum())
        self.position.seconds += time.perf_counter() - started
        value = float(loss.detach())
        if self.position.step % 10 == 0 or self.position.step == 1:
            self.history.train.append({"step": self.position.step,
                                       "tokens": self.position.tokens, "loss": value,
                                       "lr": float(self.scheduler.get_last_lr()[0])})
        return value

    def measure(self) -> Perplexity:
        result = held_out_perplexity(
            self.model, self.valid, unigram=self.unigram,
            max_length=self.config.max_length, batch_tokens=self.config.batch_tokens,
            device=self.device, select=self.config.select)
        self.history.valid.append({"step": self.position.step, "tokens": self.position.tokens,
                                   "seconds": round(self.position.seconds, 2),
                                   "model": result.model, "unigram": result.unigram,
                                   "positions": result.positions})
        return result

    # -- checkpoints ---------------------------------------------------------------------------
    def save(self) -> None:
        """The weights, the optimiser, the schedule, the position and the curve, written to a
        new folder that replaces the last one only when complete."""
        target = self.state_dir / "checkpoint"
        fresh = self.state_dir / "checkpoint.new"
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        self.model.save_pretrained(fresh, safe_serialization=True)
        torch.save({"optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict()}, fresh / "optimizer.pt")
        (fresh / "position.json").write_text(json.dumps({
            "position": self.position.__dict__, "history": self.history.to_dict(),
            "total_steps": self.total_steps, "config": self.config.to_dict()}, indent=1))
        old = self.state_dir / "checkpoint.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.replace(old)
        fresh.replace(target)
        shutil.rmtree(old, ignore_errors=True)

    def restore(self) -> bool:
        """Continue from the last checkpoint, if there is one; False when starting afresh."""
        target = self.state_dir / "checkpoint"
        if not (target / "position.json").is_file():
            return False
        saved = json.loads((target / "position.json").read_text())
        # the weights came from the checkpoint already (__init__); the optimiser's and the
        # schedule's saved states put the learning rate back where the run was
        state = torch.load(target / "optimizer.pt", map_location=self.device,
                           weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.position = Position(**saved["position"])
        self.history = History(**saved["history"])
        return True
