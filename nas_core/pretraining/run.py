"""``pretrain``: a corpus in, a backbone out. The steps: read the corpus, hold out validation
proteins by homology (once: a resumed run keeps them), train from the last checkpoint, export
a checkpoint plain ``transformers`` loads, with its model card and lineage."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transformers import EsmTokenizer

from nas_core.backbones.registry import (
    ESM2_VOCAB,
    PRETRAINED_FLAG,
    UNTRAINED_FLAG,
    Pretraining,
    resolve,
)
from nas_core.pretraining.card import write_card
from nas_core.pretraining.config import PretrainConfig
from nas_core.pretraining.corpus import Corpus, read_corpus
from nas_core.pretraining.evaluation import Perplexity
from nas_core.pretraining.holdout import RANDOM, Holdout, hold_out
from nas_core.pretraining.loop import STATE_DIR, Progress, Run

RUN_FILE = "run.json"


class PretrainError(ValueError):
    """The run cannot start or continue; the message says why and what to do."""


@dataclass(frozen=True)
class Pretrained:
    """What a finished run made: the backbone folder and its held-out perplexity."""

    out_dir: Path
    perplexity: Perplexity
    tokens: int
    steps: int
    seconds: float


def pretrain(corpus_path: str | Path, out_dir: str | Path, config: PretrainConfig, *,
             progress: Callable[[Progress, Run], None] | None = None,
             should_stop: Callable[[], bool] | None = None,
             say: Callable[[str], None] = lambda text: None, credit: str = "",
             ignore_labels: bool = False) -> Pretrained:
    """Pretrain (or continue) and export the backbone into ``out_dir``; a rerun of the same
    command after a kill or a cancel resumes from the last checkpoint."""
    out_dir = Path(out_dir)
    state_dir = out_dir / STATE_DIR
    say(f"reading {Path(corpus_path).name}")
    corpus = read_corpus(corpus_path, ignore_labels=ignore_labels)
    say(f"{len(corpus):,} distinct proteins, {corpus.n_residues:,} residues"
        + (f" (left out: {', '.join(f'{n:,} {why}' for why, n in corpus.dropped.items())})"
           if corpus.dropped else ""))
    holdout = _holdout(corpus, config, state_dir, say)
    run = Run(config, corpus, holdout, state_dir)
    if run.restore():
        say(f"resuming at step {run.position.step:,} ({run.position.tokens:,} tokens seen)")
    started = time.monotonic()
    final = run.run(progress=progress, should_stop=should_stop)
    say(f"held-out perplexity {final.model:.2f} (amino-acid frequencies alone: "
        f"{final.unigram:.2f}) after {run.position.tokens:,} tokens")
    _export(run, out_dir, corpus, credit)
    return Pretrained(out_dir, final, run.position.tokens, run.position.step,
                      time.monotonic() - started)


def _holdout(corpus: Corpus, config: PretrainConfig, state_dir: Path,
             say: Callable[[str], None]) -> Holdout:
    """The validation proteins: drawn once and kept, so a resumed run scores the same ones;
    a different corpus or recipe in the same folder is refused."""
    path = state_dir / RUN_FILE
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved["corpus_fingerprint"] != corpus.fingerprint:
            raise PretrainError(
                f"{state_dir.parent} holds a run on another corpus ({saved['corpus']}): give "
                "a new --out folder, or the same corpus to continue it.")
        if not PretrainConfig.from_dict(saved["config"]).same_run(config):
            raise PretrainError(
                f"{state_dir.parent} holds a run with other settings: only --tokens (and the "
                "device) may change when continuing it. Give a new --out folder for a new run.")
        return Holdout.from_dict(saved["holdout"])
    say(f"holding out validation proteins by homology (MMseqs2, {config.identity:.0%} "
        "identity)")
    holdout = hold_out(corpus, config.validation, config.identity, config.seed)
    state_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"corpus": corpus.source,
                                "corpus_fingerprint": corpus.fingerprint,
                                "config": config.to_dict(), "holdout": holdout.to_dict()}))
    if holdout.method == RANDOM:
        say("the corpus is one family (half of it is related to the validation draw): "
            f"{len(holdout.valid):,} validation proteins drawn at random instead, so the "
            "held-out perplexity measures this family, not unseen ones")
    say(f"{len(holdout.train):,} training and {len(holdout.valid):,} validation proteins")
    return holdout


def _export(run: Run, out_dir: Path, corpus: Corpus, credit: str) -> None:
    """A standard checkpoint (``EsmForMaskedLM``, safetensors, ESM-2's tokenizer files) with
    what it learnt from in its config, its card and its curve."""
    model = run.model
    config = model.config
    start = resolve(run.config.base).name if run.config.base else f"random {run.config.shape}"
    last = run.last_measurement()
    lineage = Pretraining(
        corpus=corpus.source, corpus_fingerprint=corpus.fingerprint,
        proteins=len(run.holdout.train), validation_proteins=len(run.holdout.valid),
        residues=run.train.n_residues, tokens_seen=run.position.tokens,
        steps=run.position.step, start=start, validation_perplexity=last.model,
        unigram_perplexity=last.unigram, holdout=run.holdout.method)
    setattr(config, PRETRAINED_FLAG, lineage.to_dict())
    if getattr(config, UNTRAINED_FLAG, False):  # it has learnt something now
        delattr(config, UNTRAINED_FLAG)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    vocab = out_dir / "vocab.txt"
    vocab.write_text("\n".join(ESM2_VOCAB))
    EsmTokenizer(str(vocab)).save_pretrained(out_dir)
    (out_dir / "pretraining_history.json").write_text(json.dumps(run.history.to_dict()))
    write_card(out_dir, run.config, lineage, run.history, credit=credit,
               seconds=run.position.seconds)
