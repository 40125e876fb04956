"""Design-loop benchmark, side by side in one run:

1. A retrospective design loop on shipped data: start from a small labelled subset, then
   rounds of "fit -> suggest a batch -> reveal its labels", against random picks from the same
   start, over several seeds. Reported: share of the top-10 % sequences found (for the
   classification set: of the rare class) and the best value found after the last round, and
   acquisition / random. Sets: GFP brightness (500 avGFP variants; maximise) and antimicrobial
   peptides among UniProt peptides (1,000 sequences of which 10 % AMP; find AMP).
   The batches are chosen by the engine's own acquisition rules and diversity penalty
   (``nas_core.design.suggest.pick_batch``, MMseqs2 identities). The model refitted each
   round is a bootstrap ensemble of 5 reference models (ridge on one-hot residues for GFP,
   logistic regression on amino-acid + dipeptide composition for peptides), not an ESM-NAS
   search: ESM-2 weights cannot be downloaded here, and with random weights a search learns
   less than these (see RESULTS.md). The acquisition code is the same either way.
2. Calibration and the ensemble on real searches: a small search (ESM-2-8M-shaped backbone with
   RANDOM weights) on two shipped classification sets, finalised with an ensemble of 3; the
   held-out expected calibration error before and after temperature scaling, and the
   ensemble's test score beside the best single model's, with its calibration error before
   and after its own temperature.

``python -m benchmarks.design_loop [--seeds 5] [--rounds 5] [--batch 20] [--write]``
(``--skip-design`` / ``--skip-searches``: one part only)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmarks.run import append_results, machine, say
from nas_core.backbones.loading import make_tiny_backbone
from nas_core.data.options import SplitOptions
from nas_core.data.splits import assign_splits
from nas_core.data.validation import load_dataset
from nas_core.design.config import SuggestConfig
from nas_core.design.suggest import pick_batch
from nas_core.evaluation.baseline import composition, one_hot
from nas_core.runtime.launch import run_search
from nas_core.search.config import SearchConfig
from nas_core.search.space import SearchSpace

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
MEMBERS = 5
DEFAULT = SuggestConfig().rule
RULES = ("thompson", "ei", "ucb", "greedy")


class Task:
    """One retrospective design problem: features, goal values (higher is better), hits."""

    def __init__(self, name: str, sequences: list[str], goal: np.ndarray, hits: np.ndarray,
                 features: np.ndarray, classification: bool) -> None:
        self.name, self.sequences, self.goal, self.hits = name, sequences, goal, hits
        self.x, self.classification = features, classification

    def members(self, labelled: np.ndarray, rest: np.ndarray, seed: int) -> np.ndarray:
        """Each bootstrap member's predictions (goal scale) for the unlabelled candidates."""
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(MEMBERS):
            sample = rng.choice(labelled, size=len(labelled), replace=True)
            y = self.goal[sample]
            if self.classification:
                if len(set(y)) < 2:  # a resample without the rare class: no signal
                    out.append(np.full(len(rest), y.mean()))
                    continue
                model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000,
                                                                           C=0.5))
                model.fit(self.x[sample], y)
                out.append(model.predict_proba(self.x[rest])[:, 1])
            else:
                model = Ridge(alpha=1.0).fit(self.x[sample], y)
                out.append(model.predict(self.x[rest]))
        return np.asarray(out)


def gfp() -> Task:
    frame = pd.read_csv(ASSETS / "gfp_fluorescence.csv")
    seqs = list(frame["sequence"])
    y = frame["label"].to_numpy(float)
    top = y >= np.quantile(y, 0.9)
    return Task("GFP brightness (maximise)", seqs, y, top,
                one_hot(seqs, max(map(len, seqs))), False)


def peptides(seed: int = 0) -> Task:
    frame = pd.read_csv(ASSETS / "amp_vs_uniprot.csv")
    rng = np.random.default_rng(seed)
    amp = frame[frame["label"] == "AMP"].sample(100, random_state=int(rng.integers(1e6)))
    other = frame[frame["label"] != "AMP"].sample(900, random_state=int(rng.integers(1e6)))
    frame = pd.concat([amp, other]).sample(frac=1.0, random_state=seed)
    seqs = list(frame["sequence"])
    y = (frame["label"] == "AMP").to_numpy(float)
    return Task("AMP among UniProt peptides (find AMP, 10 %)", seqs, y, y == 1,
                composition(seqs), True)


def loop(task: Task, rule: str, seed: int, *, start: int, batch: int, rounds: int,
         diversity: float = 0.5) -> tuple[int, float, float]:
    """Top-10 % (or rare-class) sequences found by the picks, the best value labelled and the
    mean value of the picks."""
    rng = np.random.default_rng(seed)
    n = len(task.sequences)
    labelled = rng.choice(n, size=start, replace=False)
    picked: list[int] = []
    for r in range(rounds):
        rest = np.setdiff1d(np.arange(n), labelled)
        if rule == "random":
            chosen = rng.choice(rest, size=batch, replace=False)
        else:
            members = task.members(labelled, rest, seed * 1000 + r)
            best = 0.5 if task.classification else float(task.goal[labelled].max())
            result = pick_batch([task.sequences[i] for i in rest], members.mean(0),
                                members.std(0),
                                SuggestConfig(batch=batch, rule=rule, diversity=diversity,
                                              seed=seed * 1000 + r),
                                best=best, members=members, batch=batch,
                                training=[task.sequences[i] for i in labelled])
            chosen = rest[result.chosen]
        picked += list(chosen)
        labelled = np.concatenate([labelled, chosen])
    return (int(task.hits[picked].sum()), float(task.goal[labelled].max()),
            float(task.goal[picked].mean()))


def design(args) -> None:
    for task in (gfp(), peptides()):
        say(f"design loop: {task.name}; {len(task.sequences)} sequences, "
            f"{int(task.hits.sum())} hits; start {args.start} labelled, {args.rounds} rounds "
            f"of {args.batch}, {args.seeds} seeds; model: bootstrap ensemble of {MEMBERS} "
            "reference models")
        found: dict[str, list[int]] = {}
        best: dict[str, list[float]] = {}
        mean: dict[str, list[float]] = {}
        started = time.perf_counter()
        for rule in ("random", *RULES, f"{DEFAULT}-nodiv"):
            for seed in range(args.seeds):
                hits, top, value = loop(task, rule.removesuffix("-nodiv"), seed,
                                        start=args.start, batch=args.batch,
                                        rounds=args.rounds,
                                        diversity=0.0 if rule.endswith("-nodiv") else 0.5)
                found.setdefault(rule, []).append(hits)
                best.setdefault(rule, []).append(top)
                mean.setdefault(rule, []).append(value)
        random_hits = float(np.mean(found["random"]))
        for rule, hits in found.items():
            ratio = np.mean(hits) / random_hits if random_hits else float("inf")
            say(f"  {rule:15s} top hits found {np.mean(hits):5.1f} ± {np.std(hits):4.1f} "
                f"(of {args.rounds * args.batch} picks)"
                + ("" if task.classification else
                   f"  mean value picked {np.mean(mean[rule]):.3f}  best value "
                   f"{np.mean(best[rule]):.3f}")
                + ("" if rule == "random" else f"  acquisition/random {ratio:.2f}x"))
        say(f"  ({time.perf_counter() - started:.0f} s)")


def calibration(args) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as workdir:
        os.environ["ESM_NAS_HOME"] = str(Path(workdir) / "ws")
        backbone = make_tiny_backbone(Path(workdir) / "esm2_8m_shape", layers=6, hidden=320,
                                      heads=20, intermediate=1280)
        for name in ("amp_vs_transmembrane.csv", "anticancer_vs_random.csv"):
            result = load_dataset(ASSETS / name)
            assert result.dataset is not None
            dataset = assign_splits(result.dataset, SplitOptions())[0]
            space = SearchSpace(backbones=(str(backbone),), adaptations=("frozen",),
                                max_epochs_range=(8, 8), batch_sizes=(32,), heads_kept=(1.0,),
                                ffn_kept=(1.0,))
            report = run_search(SearchConfig(name.split(".")[0], space,
                                             n_trials=args.trials, ensemble_size=3, seed=0),
                                dataset, Path(workdir) / name)
            assert report is not None
            cal, ens, metric = report.calibration, report.ensemble, report.metric
            assert cal is not None and ens is not None
            say(f"calibration {name}: held-out ECE {cal.ece_before:.3f} before, "
                f"{cal.ece_after:.3f} after temperature scaling (T = "
                f"{cal.temperature:.2f}); test accuracy "
                f"{report.best.test['accuracy']:.3f} either way")
            if ens.built and ens.vs_best and ens.vs_best.ci and ens.test:
                vs = ens.vs_best
                single = report.best.test[metric]
                say(f"ensemble {name}: {len(ens.members)} members, test {metric} "
                    f"{ens.test[metric]:.3f} vs best single {single:.3f}"
                    f" (difference 95% CI {vs.ci[0]:+.3f} to {vs.ci[1]:+.3f}: "
                    f"{vs.verdict}); ECE {ens.ece_averaged:.3f} for the plain "
                    f"average, {ens.ece:.3f} with the ensemble's own temperature (T = "
                    f"{ens.temperature:.2f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--start", type=int, default=50, help="labelled sequences at first")
    parser.add_argument("--trials", type=int, default=6, help="trials of each search (part 2)")
    parser.add_argument("--skip-searches", action="store_true", help="only the design loop")
    parser.add_argument("--skip-design", action="store_true",
                        help="only the searches (calibration and the ensemble)")
    parser.add_argument("--write", action="store_true", help="append to benchmarks/RESULTS.md")
    parser.add_argument("--occasion", default="added with 'test these next'",
                        help="why this run was made (RESULTS.md)")
    args = parser.parse_args()
    say(f"machine: {machine()}")
    if not args.skip_design:
        design(args)
    if not args.skip_searches:
        calibration(args)
    if args.write:
        flags = " ".join(a for a in sys.argv[1:] if a != "--write")
        append_results(f"python -m benchmarks.design_loop {flags}".strip(), args.occasion)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
