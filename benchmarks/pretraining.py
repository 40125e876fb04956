"""Pretraining benchmark, side by side in one run:

- ``pretrain_tokens_per_s``: the engine's training step against a hand-written masked-LM loop
  on the same batches and masks (the engine's overhead; goal at most 1.1x);
- ``validation_perplexity``: a pretrained backbone's held-out perplexity (every selected residue
  masked) against the unigram perplexity of the same positions, along its curve (goal: at most
  0.8x the unigram at the end);
- ``probe_q3``: a linear probe (logistic regression) of frozen residue representations on the
  shipped FLIP secondary-structure chains, every layer, best layer reported, for the pretrained
  backbone and its random-weight twin, beside the one-hot window reference.

``python -m benchmarks.pretraining --model assets/backbones/NAME [--write]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from transformers import EsmForMaskedLM, EsmModel

from benchmarks.run import ROOT, append_results, machine, say
from nas_core.backbones.loading import encode, esm2_config, esm2_tokenizer
from nas_core.common.metrics import IGNORE_INDEX
from nas_core.data.examples import ASSETS
from nas_core.data.validation import load_flip
from nas_core.evaluation.baseline import window_features
from nas_core.pretraining.batches import PAD_ID, collate, epoch_batches
from nas_core.pretraining.config import PretrainConfig
from nas_core.pretraining.corpus import read_corpus
from nas_core.pretraining.holdout import Holdout
from nas_core.pretraining.loop import Run
from nas_core.pretraining.masking import mask_tokens

PROBE_TRAIN_RESIDUES = 60_000  # residues the probe is fitted on (drawn once, same for all)


def engine_overhead(corpus_path: Path, shape: str, steps: int = 12) -> None:
    """The engine's step against a plain loop on the same batches, masks and optimiser."""
    corpus = read_corpus(corpus_path)
    n = len(corpus)
    holdout = Holdout(np.arange(50, n), np.arange(0, 50))
    config = PretrainConfig(shape=shape, tokens=10**9, max_length=256, batch_tokens=16_384)
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(config, corpus, holdout, Path(tmp))
        batches = run.batches(0)[: steps + 1]
        plain = EsmForMaskedLM(esm2_config(**_shape(shape)))
        plain.load_state_dict(run.model.state_dict())
        optimizer = torch.optim.AdamW(plain.parameters(), lr=1e-3, betas=(0.9, 0.98))
        rates = {"engine": [], "plain": []}
        for _ in range(2):  # interleaved: a busy moment hurts neither alone
            started, tokens = time.perf_counter(), 0
            for batch in batches[1:]:
                before = run.position.tokens
                run.step(batch)
                tokens += run.position.tokens - before
            rates["engine"].append(tokens / (time.perf_counter() - started))
            started, tokens = time.perf_counter(), 0
            for i, batch in enumerate(batches[1:]):
                ids = collate(run.train, batch)
                inputs, labels = mask_tokens(ids, torch.Generator().manual_seed(i))
                loss = plain(input_ids=inputs, attention_mask=(inputs != PAD_ID).long(),
                             labels=labels).loss
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(plain.parameters(), 1.0)
                optimizer.step()
                tokens += int((ids != PAD_ID).sum())
            rates["plain"].append(tokens / (time.perf_counter() - started))
    engine, hand = max(rates["engine"]), max(rates["plain"])
    say(f"pretrain_tokens_per_s: engine {engine:,.0f}, hand-written loop {hand:,.0f} "
        f"(overhead {hand / engine:.2f}x; shape {shape}, crops of 256, batches of 16,384 "
        f"tokens, {steps} steps, best of 2 interleaved rounds)")
    lengths = run.train.lengths()
    epoch = epoch_batches(lengths, epoch=0, seed=0, max_length=256, batch_tokens=16_384)
    useful = int((np.minimum(lengths, 256) + 2).sum())
    padded = sum(b.padded_tokens for b in epoch)
    say(f"  padding: {1 - useful / padded:.1%} of the padded tokens of an epoch (crops of "
        "similar length share a batch)")


def _shape(text: str) -> dict:
    layers, hidden, heads, ffn = (int(x) for x in text.split(","))
    return {"layers": layers, "hidden": hidden, "heads": heads, "intermediate": ffn}


def curve(model_dir: Path) -> None:
    history = json.loads((model_dir / "pretraining_history.json").read_text())
    config = json.loads((model_dir / "config.json").read_text())
    lineage = config["esm_nas_pretrained"]
    say(f"validation_perplexity of {model_dir.name} ({lineage['proteins']:,} training "
        f"proteins, {lineage['validation_proteins']:,} held out by homology; every selected "
        "residue masked):")
    for row in history["valid"]:
        say(f"  {int(row['tokens']):>12,} tokens: {row['model']:7.3f} vs amino-acid "
            f"frequencies {row['unigram']:.3f} ({row['model'] / row['unigram']:.3f}x; "
            f"{row['seconds'] / 60:.0f} min of training)")
    last = history["valid"][-1]
    goal = "met" if last["model"] <= 0.8 * last["unigram"] else "NOT met"
    say(f"  goal (at most 0.8x the unigram perplexity): {goal}")


def probe(model_dir: Path) -> None:
    """Best-layer linear probe Q3 of the backbone and of its random-weight twin."""
    flip = ASSETS / "secondary_structure"
    result = load_flip(flip / "sequences.fasta", flip / "labels.fasta", flip / "mask.fasta")
    assert result.dataset is not None
    frame = result.dataset.frame
    names = list(result.dataset.label_names or [])
    lookup = {c: i for i, c in enumerate(names)}
    parts = {s: frame[frame["split"].isin(["train", "valid"] if s == "train" else ["test"])]
             for s in ("train", "test")}
    labels = {s: [np.array([lookup.get(c, IGNORE_INDEX) for c in str(lab)])
                  for lab in part["label"]] for s, part in parts.items()}
    rng = np.random.default_rng(0)
    flat_train = np.concatenate(labels["train"])
    keep_train = np.flatnonzero(flat_train != IGNORE_INDEX)
    keep_train = np.sort(rng.choice(keep_train, min(PROBE_TRAIN_RESIDUES, len(keep_train)),
                                    replace=False))
    flat_test = np.concatenate(labels["test"])
    keep_test = np.flatnonzero(flat_test != IGNORE_INDEX)
    window = {s: window_features(list(parts[s]["sequence"])) for s in parts}
    reference = LogisticRegression(max_iter=1000, C=0.5).fit(
        window["train"][keep_train], flat_train[keep_train])
    q3_ref = float((reference.predict(window["test"][keep_test]) == flat_test[keep_test]).mean())
    config = json.loads((model_dir / "config.json").read_text())
    twin = EsmModel(esm2_config(layers=config["num_hidden_layers"],
                                hidden=config["hidden_size"],
                                heads=config["num_attention_heads"],
                                intermediate=config["intermediate_size"]),
                    add_pooling_layer=False)
    trained = EsmModel.from_pretrained(model_dir, add_pooling_layer=False, use_kernels=False)
    for name, model in (("random-weight twin", twin), (model_dir.name, trained)):
        per_layer = []
        states = {s: _residue_states(model, list(parts[s]["sequence"])) for s in parts}
        for layer in range(len(states["train"])):
            x_train = states["train"][layer][keep_train]
            x_test = states["test"][layer][keep_test]
            mean, sd = x_train.mean(0), x_train.std(0) + 1e-6
            fit = LogisticRegression(max_iter=300).fit((x_train - mean) / sd,
                                                       flat_train[keep_train])
            per_layer.append(float((fit.predict((x_test - mean) / sd)
                                    == flat_test[keep_test]).mean()))
        best = int(np.argmax(per_layer))
        say(f"probe_q3 {name}: {per_layer[best]:.3f} (layer {best} of {len(per_layer) - 1}; "
            "every layer: " + ", ".join(f"{q:.3f}" for q in per_layer) + ")")
    say(f"probe_q3 one-hot window reference (15 residues): {q3_ref:.3f}; "
        f"{len(keep_train):,} training residues, {len(keep_test):,} held-out test residues")


@torch.inference_mode()
def _residue_states(model, sequences: list[str]) -> list[np.ndarray]:
    """Per layer (embeddings first): every residue's representation, proteins in order."""
    model.eval()
    tokenizer = esm2_tokenizer()
    layers: list[list[np.ndarray]] = []
    for ids in encode(sequences, tokenizer):
        out = model(input_ids=torch.as_tensor(ids)[None], output_hidden_states=True)
        if not layers:
            layers = [[] for _ in out.hidden_states]
        for i, h in enumerate(out.hidden_states):
            layers[i].append(h[0, 1:-1].float().numpy())
    return [np.concatenate(parts) for parts in layers]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="a pretrained backbone folder")
    parser.add_argument("--corpus", default=str(ROOT.parent / "shared" / "data" / "proteomes"
                                                / "uniprot_proteomes.fasta.gz"),
                        help="corpus for the overhead measurement")
    parser.add_argument("--write", action="store_true", help="append to RESULTS.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    warnings.filterwarnings("ignore", module="sklearn")  # convergence notes of the probes
    say(f"machine: {machine()}")
    model_dir = Path(args.model)
    config = json.loads((model_dir / "config.json").read_text())
    shape = (f"{config['num_hidden_layers']},{config['hidden_size']},"
             f"{config['num_attention_heads']},{config['intermediate_size']}")
    if Path(args.corpus).is_file():
        engine_overhead(Path(args.corpus), shape)
    curve(model_dir)
    probe(model_dir)
    if args.write:
        append_results(f"python -m benchmarks.pretraining --model {args.model}",
                       "added with masked-language-model pretraining")
    return 0


if __name__ == "__main__":
    sys.exit(main())
