"""Pretraining benchmark, side by side in one run:

- ``pretrain_tokens_per_s``: the engine's training step against a hand-written masked-LM loop
  on the same batches and masks (the engine's overhead; goal at most 1.1x);
- ``validation_perplexity``: a pretrained backbone's held-out perplexity (every selected residue
  masked) against the unigram perplexity of the same positions, along its curve (goal: at most
  0.8x the unigram at the end);
- ``probe_q3``: a linear probe (logistic regression) of frozen residue representations on the
  shipped FLIP secondary-structure chains, every layer, best layer reported, for the pretrained
  backbone and its random-weight twin, beside the one-hot window reference;
- ``transfer_curve`` (``--curve-tokens N``): a fresh run of the same recipe probed at every
  measurement, so held-out perplexity and probe Q3 are read against tokens seen.

``python -m benchmarks.pretraining --model assets/backbones/NAME [--write]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from transformers import EsmForMaskedLM, EsmModel

from benchmarks.run import ROOT, append_results, machine, say
from nas_core.backbones.loading import encode, esm2_config, esm2_tokenizer
from nas_core.common.metric_names import IGNORE_INDEX
from nas_core.data.examples import ASSETS
from nas_core.data.validation import load_flip
from nas_core.evaluation.baseline import window_features
from nas_core.pretraining.batches import PAD_ID, collate, epoch_batches
from nas_core.pretraining.config import PretrainConfig
from nas_core.pretraining.corpus import read_corpus
from nas_core.pretraining.holdout import Holdout
from nas_core.pretraining.loop import Run
from nas_core.pretraining.masking import mask_tokens
from nas_core.pretraining.run import pretrain

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


@dataclass
class ProbeData:
    """The shipped secondary-structure chains, the residues a probe fits on and is tested on."""

    sequences: dict[str, list[str]]
    labels: dict[str, np.ndarray]
    keep: dict[str, np.ndarray]


def probe_data() -> ProbeData:
    flip = ASSETS / "secondary_structure"
    result = load_flip(flip / "sequences.fasta", flip / "labels.fasta", flip / "mask.fasta")
    assert result.dataset is not None
    frame = result.dataset.frame
    names = list(result.dataset.label_names or [])
    lookup = {c: i for i, c in enumerate(names)}
    parts = {s: frame[frame["split"].isin(["train", "valid"] if s == "train" else ["test"])]
             for s in ("train", "test")}
    labels = {s: np.concatenate([np.array([lookup.get(c, IGNORE_INDEX) for c in str(lab)])
                                 for lab in part["label"]]) for s, part in parts.items()}
    rng = np.random.default_rng(0)
    keep_train = np.flatnonzero(labels["train"] != IGNORE_INDEX)
    keep = {"train": np.sort(rng.choice(keep_train, min(PROBE_TRAIN_RESIDUES, len(keep_train)),
                                        replace=False)),
            "test": np.flatnonzero(labels["test"] != IGNORE_INDEX)}
    return ProbeData({s: list(parts[s]["sequence"]) for s in parts}, labels, keep)


def probe_reference(data: ProbeData) -> float:
    """The one-hot window reference's Q3 on the same residues."""
    window = {s: window_features(data.sequences[s]) for s in data.sequences}
    reference = LogisticRegression(max_iter=1000, C=0.5).fit(
        window["train"][data.keep["train"]], data.labels["train"][data.keep["train"]])
    predicted = reference.predict(window["test"][data.keep["test"]])
    return float((predicted == data.labels["test"][data.keep["test"]]).mean())


def probe_model(model, data: ProbeData) -> list[float]:
    """Q3 of a linear probe on each layer's frozen residue representations (embeddings
    first)."""
    states = {s: _residue_states(model, data.sequences[s]) for s in data.sequences}
    per_layer = []
    for layer in range(len(states["train"])):
        x_train = states["train"][layer][data.keep["train"]]
        x_test = states["test"][layer][data.keep["test"]]
        mean, sd = x_train.mean(0), x_train.std(0) + 1e-6
        fit = LogisticRegression(max_iter=300).fit((x_train - mean) / sd,
                                                   data.labels["train"][data.keep["train"]])
        per_layer.append(float((fit.predict((x_test - mean) / sd)
                                == data.labels["test"][data.keep["test"]]).mean()))
    return per_layer


def _say_probe(name: str, per_layer: list[float]) -> None:
    best = int(np.argmax(per_layer))
    say(f"probe_q3 {name}: {per_layer[best]:.3f} (layer {best} of {len(per_layer) - 1}; "
        "every layer: " + ", ".join(f"{q:.3f}" for q in per_layer) + ")")


def probe(model_dir: Path) -> None:
    """Best-layer linear probe Q3 of the backbone and of its random-weight twin."""
    data = probe_data()
    config = json.loads((model_dir / "config.json").read_text())
    twin = EsmModel(esm2_config(layers=config["num_hidden_layers"],
                                hidden=config["hidden_size"],
                                heads=config["num_attention_heads"],
                                intermediate=config["intermediate_size"]),
                    add_pooling_layer=False)
    trained = EsmModel.from_pretrained(model_dir, add_pooling_layer=False, use_kernels=False)
    for name, model in (("random-weight twin", twin), (model_dir.name, trained)):
        _say_probe(name, probe_model(model, data))
    say(f"probe_q3 one-hot window reference (15 residues): {probe_reference(data):.3f}; "
        f"{len(data.keep['train']):,} training residues, {len(data.keep['test']):,} held-out "
        "test residues")


def transfer_curve(corpus_path: Path, shape: str, tokens: int, points: int) -> None:
    """A fresh run of the shipped recipe, probed at every measurement: held-out perplexity and
    probe Q3 against tokens seen, from random weights on."""
    data = probe_data()
    snapshots: list[tuple[dict, dict]] = []

    def keep(progress, run) -> None:  # the step after each measurement: its weights
        if len(run.history.valid) > len(snapshots):
            snapshots.append((dict(run.history.valid[-1]),
                              {k: v.detach().clone() for k, v in run.model.state_dict().items()}))

    config = PretrainConfig(shape=shape, tokens=tokens, max_length=256, batch_tokens=16_384,
                            lr=1e-3, validation=500, eval_points=points,
                            eval_residues=200_000)
    with tempfile.TemporaryDirectory() as tmp:
        done = pretrain(corpus_path, Path(tmp) / "curve", config, progress=keep)
        final = EsmForMaskedLM.from_pretrained(Path(tmp) / "curve", use_kernels=False)
        history = json.loads((Path(tmp) / "curve" / "pretraining_history.json").read_text())
    snapshots.append((history["valid"][-1], final.state_dict()))
    say(f"transfer_curve: a fresh {shape} run of the shipped recipe, {done.tokens:,} tokens "
        f"({done.seconds / 60:.0f} min); held-out perplexity (every selected residue masked) "
        "and best-layer probe Q3 at each measurement:")
    for row, state in snapshots:
        model = EsmForMaskedLM(esm2_config(**_shape(shape)))
        model.load_state_dict(state)
        per_layer = probe_model(model.esm, data)
        say(f"  {int(row['tokens']):>10,} tokens: perplexity {row['model']:6.2f} (amino-acid "
            f"frequencies {row['unigram']:.2f}); probe Q3 {max(per_layer):.3f} (layer "
            f"{int(np.argmax(per_layer))})")
    say(f"  one-hot window reference: probe Q3 {probe_reference(data):.3f}")


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
    parser.add_argument("--curve-tokens", type=int, default=0,
                        help="also pretrain a fresh model of the same shape for this many "
                        "tokens, probing it at every measurement (the transfer curve)")
    parser.add_argument("--curve-points", type=int, default=5, help="measurements on it")
    parser.add_argument("--only-curve", action="store_true", help="the transfer curve alone")
    parser.add_argument("--write", action="store_true", help="append to RESULTS.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    warnings.filterwarnings("ignore", module="sklearn")  # convergence notes of the probes
    say(f"machine: {machine()}")
    model_dir = Path(args.model)
    config = json.loads((model_dir / "config.json").read_text())
    shape = (f"{config['num_hidden_layers']},{config['hidden_size']},"
             f"{config['num_attention_heads']},{config['intermediate_size']}")
    if not args.only_curve:
        if Path(args.corpus).is_file():
            engine_overhead(Path(args.corpus), shape)
        curve(model_dir)
        probe(model_dir)
    if args.curve_tokens:
        transfer_curve(Path(args.corpus), shape, args.curve_tokens, args.curve_points)
    if args.write:
        append_results(f"python -m benchmarks.pretraining --model {args.model}"
                       + (f" --curve-tokens {args.curve_tokens}" if args.curve_tokens else "")
                       + (" --only-curve" if args.only_curve else ""),
                       "added with masked-language-model pretraining")
    return 0


if __name__ == "__main__":
    sys.exit(main())
