"""Transfer benchmark: does the backbone pretrained here help on real tasks? For each shipped
task, three searches with the same space, budget and seed, differing only in the backbone:

- ``random``: the shipped backbone's shape with random weights (the negative control);
- ``pretrained``: the backbone pretrained here on the UniProt proteomes
  (assets/backbones/esm2-proteomes-0.8M);
- ``continued``: that backbone, its masked-language-model training continued on the task's own
  training and validation sequences (labels ignored, test sequences unseen), as "Teach a
  backbone your proteins" does;

beside the one-hot reference model each search fits on the same splits. Every figure is the
held-out test metric of the search's chosen model with its 95% bootstrap interval; the verdicts
are paired bootstraps on the same test resamples (better / worse / within noise). With the
same sampler seed and one backbone per space, the three searches try the same architectures.

``python -m benchmarks.transfer [--tasks ss,amp_tm,acp,amp,gfp] [--trials 8] [--write]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.run import append_results, machine, random_twin, say
from nas_core.backbones.registry import SHIPPED_DIR, resolve
from nas_core.common.report import Report
from nas_core.data.dataset import Dataset
from nas_core.data.options import IngestOptions, SplitOptions
from nas_core.data.splits import assign_splits
from nas_core.data.validation import load_dataset, load_flip
from nas_core.evaluation.trust import compare
from nas_core.modeling.batches import encode_split
from nas_core.modeling.training import evaluate
from nas_core.pretraining.config import PretrainConfig
from nas_core.pretraining.run import pretrain
from nas_core.publishing.export import load_model
from nas_core.runtime.jobs import write_dataset_corpus
from nas_core.runtime.launch import run_search
from nas_core.search.config import SearchConfig
from nas_core.search.logs import quiet_optuna
from nas_core.search.space import SearchSpace

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
PRETRAINED = SHIPPED_DIR / "esm2-proteomes-0.8M"
TASKS = {  # short name -> (shipped file, words)
    "ss": ("secondary_structure", "FLIP secondary structure (per residue, Q3)"),
    "amp_tm": ("amp_vs_transmembrane.csv", "antimicrobial vs transmembrane peptides"),
    "acp": ("anticancer_vs_random.csv", "anticancer peptides vs random peptides"),
    "amp": ("amp_vs_uniprot.csv", "antimicrobial peptides vs UniProt peptides"),
    "gfp": ("gfp_fluorescence.csv", "GFP fluorescence (regression)"),
}
ARMS = ("random", "pretrained", "continued")


@dataclass(frozen=True)
class Arm:
    """One search's outcome: its report and the chosen model's test outputs."""

    report: Report
    output: np.ndarray
    seconds: float


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated: "
                        + ", ".join(TASKS))
    parser.add_argument("--trials", type=int, default=8, help="trials per search")
    parser.add_argument("--epochs", type=int, default=10, help="most epochs per trial")
    parser.add_argument("--continue-epochs", type=float, default=20.0,
                        help="continued pretraining: passes over the task's sequences")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--write", action="store_true", help="append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    quiet_optuna()
    torch.manual_seed(0)
    lineage = resolve(str(PRETRAINED)).lineage
    assert lineage is not None
    say(f"machine: {machine()}")
    say(f"pretrained: {PRETRAINED.name} ({lineage.tokens_seen:,} tokens of "
        f"{lineage.corpus}, held-out perplexity {lineage.validation_perplexity:.2f} vs "
        f"{lineage.unigram_perplexity:.2f} for amino-acid frequencies); search: "
        f"{args.trials} trials (TPE, seed 0), up to {args.epochs} epochs each; device "
        f"{args.device}")
    with tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        os.environ["ESM_NAS_HOME"] = str(work / "ws")
        twin = random_twin(work / "random-twin", PRETRAINED.name)
        for name in args.tasks.split(","):
            _task(name, twin, work / name, args)
    if args.write:
        append_results(f"python -m benchmarks.transfer --tasks {args.tasks} --trials "
                       f"{args.trials}", "added with masked-language-model pretraining")
    return 0


def _task(name: str, twin: Path, work: Path, args) -> None:
    dataset = _dataset(name)
    work.mkdir(parents=True)
    counts = dataset.frame["split"].value_counts()
    say("")
    say(f"task {name}: {TASKS[name][1]}; {len(dataset.frame)} sequences (train "
        f"{counts.get('train', 0)}, valid {counts.get('valid', 0)}, test "
        f"{counts.get('test', 0)})")
    continued = _continue(dataset, work / "continued-backbone", args)
    backbones = {"random": twin, "pretrained": PRETRAINED, "continued": continued}
    arms = {arm: _search(arm, backbones[arm], dataset, work, args) for arm in ARMS}
    report = arms["pretrained"].report
    metric = report.metric
    y = dataset.label_index(dataset.part("test")["label"])
    reference = report.baseline
    if reference.test and reference.test_ci:
        low, high = reference.test_ci[metric] or (float("nan"), float("nan"))
        q3 = (f" (Q3 {reference.test['accuracy']:.3f})"
              if dataset.task.per_residue and metric != "accuracy" else "")
        say(f"  reference ({reference.model}): {metric} {reference.test[metric]:.3f} "
            f"[{low:.3f}, {high:.3f}]{q3}")
    for arm, outcome in arms.items():
        best = outcome.report.best
        low, high = (best.test_ci or {}).get(metric) or (float("nan"), float("nan"))
        versus = outcome.report.vs_reference
        q3 = (f" (Q3 {best.test['accuracy']:.3f})"
              if dataset.task.per_residue and metric != "accuracy" else "")
        say(f"  {arm:<10}: {metric} {best.test[metric]:.3f} [{low:.3f}, {high:.3f}]{q3} "
            f"vs reference: {versus.verdict if versus else 'undetermined'}; "
            f"{outcome.seconds:.0f} s; chosen: {best.description}")
    for a, b in (("pretrained", "random"), ("continued", "random"),
                 ("continued", "pretrained")):
        c = compare(dataset.task, y, arms[a].output, arms[b].output, metric)
        interval = f"[{c.ci[0]:+.3f}, {c.ci[1]:+.3f}]" if c.ci else "(no interval)"
        say(f"  {a} - {b}: {c.difference or 0:+.3f} {interval}: {c.verdict}")


def _dataset(name: str) -> Dataset:
    file = ASSETS / TASKS[name][0]
    if file.is_dir():  # FLIP layout, its own train/test sets
        result = load_flip(file / "sequences.fasta", file / "labels.fasta",
                           file / "mask.fasta")
    else:  # amp_vs_uniprot has sequences under both labels: dropped, as the app offers
        result = load_dataset(file, IngestOptions(fixes=frozenset({"drop_conflicts"})))
    assert result.dataset is not None, result.problems
    return assign_splits(result.dataset, SplitOptions(test_fraction=0.2))[0]


def _continue(dataset: Dataset, out: Path, args) -> Path:
    """The pretrained backbone, continued on the task's training and validation sequences."""
    corpus = out.parent / "task-sequences.fasta"
    write_dataset_corpus(dataset, corpus)
    residues = int(dataset.frame[dataset.frame["split"] != "test"]["sequence"].str.len().sum())
    tokens = int(args.continue_epochs * residues)
    started = time.perf_counter()
    done = pretrain(corpus, out, PretrainConfig(
        base=str(PRETRAINED), tokens=tokens, max_length=256, batch_tokens=8_192, lr=3e-4,
        validation=50, eval_points=2, eval_residues=50_000, device=args.device),
        ignore_labels=True)
    history = json.loads((out / "pretraining_history.json").read_text())["valid"]
    say(f"  continued pretraining: {done.tokens:,} tokens ({args.continue_epochs:g} passes over "
        f"{residues:,} residues) in {time.perf_counter() - started:.0f} s; held-out perplexity "
        f"of the task's proteins {history[0]['model']:.2f} -> {history[-1]['model']:.2f} "
        f"(amino-acid frequencies {history[-1]['unigram']:.2f})")
    return out


def _search(arm: str, backbone: Path, dataset: Dataset, work: Path, args) -> Arm:
    space = SearchSpace(backbones=(str(backbone),), heads_kept=(1.0,), ffn_kept=(1.0,),
                        max_epochs_range=(args.epochs, args.epochs))
    config = SearchConfig(f"transfer-{work.name}-{arm}", space, n_trials=args.trials, seed=0,
                          device=args.device, ensemble_size=1)
    started = time.perf_counter()
    report = run_search(config, dataset, work / arm)
    assert report is not None
    seconds = time.perf_counter() - started
    model, tokenizer = load_model(work / arm / "best_model")
    part = dataset.part("test")
    y = dataset.label_index(part["label"])
    data = encode_split(list(part["sequence"]), y, tokenizer)
    _, output = evaluate(model, data, device=torch.device(args.device),
                         pad_id=tokenizer.pad_token_id, raw_targets=y)
    return Arm(report, output, seconds)


if __name__ == "__main__":
    sys.exit(main())
