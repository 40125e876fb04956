"""Per-residue benchmark on the shipped FLIP secondary-structure chains, side by side in one
run:

- residues per second of training (one epoch) and of prediction, for a frozen trial (the head
  on cached per-residue representations, as the search runs it; the cache's one-off cost is
  given too) and a LoRA trial (the backbone runs), on an ESM-2-8M-shaped backbone (6 layers,
  320 wide, 20 heads) with RANDOM weights;
- the search's held-out Q3 (per-residue accuracy over three classes) beside the per-residue
  reference model's (logistic regression on a one-hot window of 15 residues), with intervals.

``python -m benchmarks.residues [--device cuda] [--trials 6] [--write]``
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import torch

from benchmarks.run import append_results, machine, say
from nas_core.backbones.loading import encode, esm2_tokenizer, make_tiny_backbone
from nas_core.data.splits import assign_splits
from nas_core.data.validation import load_flip
from nas_core.modeling.architecture import Architecture
from nas_core.modeling.batches import Encoded, encode_split, length_batches
from nas_core.modeling.build import build_model
from nas_core.modeling.cache import RepresentationCache
from nas_core.modeling.modules import HeadModel, PooledHead, init_head
from nas_core.modeling.training import predict_outputs, resolve_device, train_epoch
from nas_core.runtime.launch import run_search
from nas_core.search.config import SearchConfig
from nas_core.search.objective import SearchData
from nas_core.search.space import SearchSpace

ROOT = Path(__file__).resolve().parent.parent
SS = ROOT / "assets" / "secondary_structure"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--trials", type=int, default=8, help="trials of the search")
    parser.add_argument("--epochs", type=int, default=10, help="most epochs per trial")
    parser.add_argument("--adaptations", default=None,
                        help="adaptations the search may choose; default frozen on a CPU (a "
                        "LoRA epoch takes minutes there), frozen,lora on a GPU")
    parser.add_argument("--write", action="store_true", help="append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as workdir:
        os.environ["ESM_NAS_HOME"] = str(Path(workdir) / "ws")
        backbone = make_tiny_backbone(Path(workdir) / "esm2_8m_shape", layers=6, hidden=320,
                                      heads=20, intermediate=1280)
        result = load_flip(SS / "sequences.fasta", SS / "labels.fasta", SS / "mask.fasta")
        assert result.dataset is not None, result.problems
        dataset = assign_splits(result.dataset)[0]
        data = SearchData.from_dataset(dataset)
        n_train = sum(len(s) for s in data.train_sequences)
        labelled = sum(int((t >= 0).sum()) for t in data.train_targets)
        say(f"machine: {machine()}")
        say(f"data: FLIP secondary structure, {len(dataset.frame)} chains ({n_train:,} training "
            f"residues, {labelled:,} labelled); backbone: ESM-2-8M-shaped (6 x 320, 20 heads) "
            f"with RANDOM weights; device {device.type}")
        for adaptation in ("frozen", "lora"):
            _throughput(adaptation, str(backbone), data, dataset, device)
        adaptations = tuple((args.adaptations or ("frozen,lora" if device.type == "cuda"
                                                  else "frozen")).split(","))
        space = SearchSpace(backbones=(str(backbone),), adaptations=adaptations,
                            max_epochs_range=(args.epochs, args.epochs), batch_sizes=(16, 32),
                            heads_kept=(1.0,), ffn_kept=(1.0,))
        started = time.perf_counter()
        report = run_search(SearchConfig("ss-bench", space, n_trials=args.trials,
                                         metric="accuracy", device=args.device),
                            dataset, Path(workdir) / "run")
        assert report is not None
        best, base = report.best, report.baseline
        assert best.test_ci and base.test and base.test_ci and report.vs_reference
        ours, theirs = best.test["accuracy"], base.test["accuracy"]
        low, high = best.test_ci["accuracy"]
        blow, bhigh = base.test_ci["accuracy"]
        say(f"held_out_q3: {ours:.3f} [{low:.3f}, {high:.3f}] (search: {args.trials} trials "
            f"over {'/'.join(adaptations)}, {time.perf_counter() - started:.0f} s; best: "
            f"{best.description})")
        say(f"reference_q3: {theirs:.3f} [{blow:.3f}, {bhigh:.3f}] ({base.model}, fitted "
            f"on {base.residues:,} residues in {base.seconds:.1f} s); paired bootstrap: "
            f"{report.vs_reference.verdict}")
    if args.write:
        append_results(f"python -m benchmarks.residues --device {args.device}",
                       "added with per-residue tasks")
    return 0


def _throughput(adaptation: str, backbone: str, data: SearchData, dataset,
                device: torch.device) -> None:
    """One training epoch and one prediction pass over the test chains, timed."""
    arch = Architecture(backbone=backbone, n_layers=6, adaptation=adaptation, batch_size=16,
                        head_layers=1, head_width=128, lr=1e-3)
    tokenizer = esm2_tokenizer()
    train_data = encode_split(data.train_sequences, data.train_targets, tokenizer)
    note = ""
    if adaptation == "frozen":  # as a search trains it: the head on cached representations
        started = time.perf_counter()
        table, offsets = RepresentationCache().residues(
            backbone, data.train_sequences, 6, device=device)
        note = f"; the cache took {time.perf_counter() - started:.1f} s once"
        train_data.residues = (table, offsets)
        model: PooledHead = HeadModel(arch, data.info, table.shape[1])
    else:
        model = build_model(arch, data.info)[0]
    init_head(model, 0)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=arch.lr)
    batches = length_batches(train_data.lengths, arch.batch_size, max_tokens=32768,
                             rng=np.random.default_rng(0))
    started = time.perf_counter()
    train_epoch(model, train_data, batches, np.zeros(len(train_data)), optimizer, params,
                epoch=1, device=device, pad_id=tokenizer.pad_token_id)
    seconds = time.perf_counter() - started
    residues = sum(len(s) for s in data.train_sequences)
    say(f"training_residues_per_s_{adaptation}: {residues / seconds:,.0f} (one epoch over "
        f"{residues:,} residues in {seconds:.1f} s, batches of {arch.batch_size}{note})")
    full: PooledHead = build_model(arch, data.info)[0].to(device) \
        if adaptation == "frozen" else model
    test = list(dataset.part("test")["sequence"])
    ids = Encoded(encode(test, tokenizer), np.zeros(len(test)))
    seconds = math.inf
    for _ in range(2):  # the better of two passes: the first pays one-off costs per shape
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        predict_outputs(full, ids, device=device, pad_id=tokenizer.pad_token_id)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = min(seconds, time.perf_counter() - started)
    residues = sum(len(s) for s in test)
    say(f"prediction_residues_per_s_{adaptation}: {residues / seconds:,.0f} ({residues:,} "
        f"test residues in {seconds:.2f} s, better of two passes; the backbone runs)")


if __name__ == "__main__":
    sys.exit(main())
