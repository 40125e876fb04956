"""ESM-NAS Studio performance benchmark: every figure is measured side by side in one run.

    python -m benchmarks.run [--quick] [--device cpu|cuda] [--write]

Prints one line per figure, ``name: value``, followed by the two raw measurements. With
``--write`` the output is also saved to benchmarks/RESULTS.md with the machine description.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import torch

from nas_core.backbones.loading import encode, make_tiny_backbone
from nas_core.backbones.registry import SHIPPED_DIR, resolve
from nas_core.common.tasks import Task
from nas_core.data.dataset import Dataset
from nas_core.data.reading import ReadLimits
from nas_core.data.splits import assign_splits
from nas_core.modeling.architecture import Architecture
from nas_core.modeling.batches import EVAL_MAX_TOKENS, collate, encode_split, length_batches
from nas_core.modeling.build import build_model
from nas_core.modeling.cache import RepresentationCache
from nas_core.modeling.losses import task_loss
from nas_core.modeling.modules import TaskInfo
from nas_core.modeling.training import TrainSettings, train
from nas_core.search.objective import SearchData, TrialContext, objective
from nas_core.search.space import SearchSpace

ROOT = Path(__file__).resolve().parent.parent

AMINO = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
LINES: list[str] = []


def say(line: str = "") -> None:
    print(line, flush=True)
    LINES.append(line)


def synthetic_dataset(n: int, seed: int = 0, low: int = 50, high: int = 600) -> Dataset:
    """Protein-like sequences, lengths log-uniform in [low, high]; the label (is the sequence
    rich in K/R?) is learnable from composition, like many real peptide tasks."""
    rng = np.random.default_rng(seed)
    lengths = np.exp(rng.uniform(np.log(low), np.log(high), n)).astype(int)
    seqs, labels = [], []
    for i, length in enumerate(lengths):
        positive = i % 2 == 0
        p = np.full(20, 1.0)
        p[[8, 14]] += 0.35 if positive else 0.0  # K, R: a weak signal, not a giveaway
        seq = "".join(rng.choice(AMINO, size=length, p=p / p.sum()))
        seqs.append(seq)
        labels.append("rich" if positive else "poor")
    frame = pd.DataFrame({"id": None, "sequence": seqs, "label": labels, "split": None,
                          "where": [f"row {i + 2}" for i in range(n)]})
    frame = frame.drop_duplicates("sequence").reset_index(drop=True)
    dataset, _ = assign_splits(Dataset(frame, "binary", ["poor", "rich"], "synthetic"))
    return dataset


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def frozen_trial(data, backbone, workdir, cache, epochs, device):
    space = SearchSpace(backbones=(backbone,), adaptations=("frozen",), poolings=("mean",),
                        layers_range=(6, 6), max_epochs_range=(epochs, epochs),
                        batch_sizes=(16,), head_layers_range=(1, 1), head_widths=(64,),
                        contrastive_weight_range=(0.0, 0.0), lr_range=(1e-3, 1e-3),
                        dropout_range=(0.1, 0.1), weight_decay_range=(1e-4, 1e-4),
                        activations=("gelu",))  # every dimension pinned: the same trial
    ctx = TrialContext(data=data, space=space, multi_objective=False,
                       training=TrainSettings("roc_auc", device, seed=0, patience=epochs),
                       checkpoint_dir=Path(workdir) / "ck", cache=cache)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: objective(t, ctx), n_trials=1)
    assert not study.trials[0].params, study.trials[0].params
    return study.trials[0]


def bench_cache(backbone, data, workdir, epochs, device) -> None:
    t_plain, plain = timed(lambda: frozen_trial(data, backbone, workdir, None, epochs, device))
    cache = RepresentationCache(Path(workdir) / "ws")
    t_cold, _ = timed(lambda: frozen_trial(data, backbone, workdir, cache, epochs, device))
    t_warm, warm = timed(lambda: frozen_trial(data, backbone, workdir, cache, epochs, device))
    diff = max(abs(a["val_loss"] - b["val_loss"]) for a, b in
               zip(plain.user_attrs["history"], warm.user_attrs["history"], strict=True))
    say(f"frozen_cache_speedup: {t_plain / t_warm:.1f}x")
    say(f"  without cache: {t_plain:.2f} s per trial; with a warm cache: {t_warm:.3f} s per "
        f"trial (the first trial, which builds the cache: {t_cold:.2f} s); {epochs} epochs, "
        f"6-layer backbone; largest difference in validation loss between the two: {diff:.1e}")


def _model(backbone, adaptation="partial"):
    arch = Architecture(backbone=backbone, n_layers=6, adaptation=adaptation,
                        finetune_layers=6, pooling="mean", head_layers=1, head_width=64,
                        batch_size=16, max_epochs=1, lr=1e-4, dropout=0.0)
    return build_model(arch, TaskInfo("binary", ["poor", "rich"]))


def bench_engine_overhead(backbone, data, device) -> None:
    model, tok = _model(backbone)
    train_data = encode_split(data.train_sequences, data.train_targets, tok)
    val_data = encode_split(data.val_sequences, data.val_targets, tok)
    result = train(model, train_data, val_data, data.val_targets,
                   TrainSettings("roc_auc", device, seed=0), pad_id=1)
    t_engine = result.history[0].seconds

    # the same model, data and batches, written by hand: forward, loss, step; then eval
    model, tok = _model(backbone)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    model.train()
    for batch in length_batches(train_data.lengths, 16, rng=rng):
        tokens, mask = collate([train_data.ids[i] for i in batch], 1, device)
        logits, _ = model(tokens, mask)
        loss = task_loss(Task.BINARY, logits, torch.as_tensor(train_data.targets[batch]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.inference_mode():
        for batch in length_batches(val_data.lengths, 64, max_tokens=EVAL_MAX_TOKENS):
            tokens, mask = collate([val_data.ids[i] for i in batch], 1, device)
            model(tokens, mask)
    t_hand = time.perf_counter() - start
    say(f"engine_overhead: {t_engine / t_hand:.3f}")
    say(f"  engine epoch: {t_engine:.2f} s; hand-written loop: {t_hand:.2f} s (same model, "
        "data and batches, both with the validation pass)")


def bench_bucketing(backbone, data, device) -> None:
    model, tok = _model(backbone)
    model.to(device).train()
    ids = encode(data.train_sequences, tok)
    lengths = np.array([len(x) for x in ids])
    targets = torch.as_tensor(data.train_targets)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def epoch(batches) -> float:
        start = time.perf_counter()
        for batch in batches:
            tokens, mask = collate([ids[i] for i in batch], 1, device)
            logits, _ = model(tokens, mask)
            loss = task_loss(Task.BINARY, logits, targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return time.perf_counter() - start

    rng = np.random.default_rng(0)
    fixed = np.array_split(rng.permutation(len(ids)), max(1, len(ids) // 16))
    t_fixed = epoch(fixed)
    t_bucket = epoch(length_batches(lengths, 16, max_tokens=16 * 256, rng=rng))
    real = lengths.sum()
    padded_fixed = sum(lengths[b].max() * len(b) for b in fixed)
    say(f"bucketing_speedup: {t_fixed / t_bucket:.2f}x")
    say(f"  length-bucketed: {real / t_bucket:,.0f} tokens/s; fixed 16-sequence batches padded "
        f"to their longest: {real / t_fixed:,.0f} tokens/s (padding {padded_fixed / real - 1:.0%} "
        "of the real tokens)")


def bench_pruning(backbone, dataset, workdir, trials) -> None:
    from nas_core.search.config import SearchConfig
    from nas_core.search.study import open_study, optimize

    results = {}
    for pruner in ("median", "none"):
        space = SearchSpace(backbones=(backbone,), adaptations=("frozen",),
                            max_epochs_range=(8, 8), lr_range=(1e-5, 3e-2),
                            batch_sizes=(16,))
        config = SearchConfig(f"prune-{pruner}", space, n_trials=trials, sampler="random",
                              pruner=pruner, seed=11, patience=8)
        root = Path(workdir) / f"prune-{pruner}"
        study = open_study(config, dataset, root=root)
        optimize(study, config, dataset, root=root)
        epochs = sum(t.user_attrs.get("epochs_trained", 0) for t in study.trials)
        results[pruner] = (epochs, study.best_value)
    saving = 1 - results["median"][0] / results["none"][0]
    say(f"pruning_epoch_saving: {saving:.2f}")
    say(f"  median pruner: {results['median'][0]} epochs, best ROC-AUC "
        f"{results['median'][1]:.4f}; no pruning: {results['none'][0]} epochs, best "
        f"{results['none'][1]:.4f} ({trials} trials, seed 11)")


def bench_worker_scaling(backbone, dataset, workdir, trials) -> None:
    """Trials per hour with 2 worker processes divided by 1, on the same study definition (a
    fresh study each), through the real `worker` command and a real PostgreSQL server when
    its binaries are installed (SQLite otherwise). Every trial costs the same: one LoRA
    architecture shape, fixed epochs, no pruning; only the learning rate varies."""
    from nas_core.data.store import DatasetStore
    from nas_core.search.budget import counted_trials
    from nas_core.search.config import SearchConfig
    from nas_core.search.storage import register
    from nas_core.search.study import open_study

    server = None
    try:
        from tests.pgserver import PostgresServer, find_bindir

        if find_bindir() is not None:
            server = PostgresServer().start()
    except (ImportError, RuntimeError, OSError):
        server = None
    root = Path(workdir) / "scaling"
    url = server.url if server else f"sqlite:///{root / 'studies.db'}"
    root.mkdir(parents=True, exist_ok=True)
    stored = DatasetStore(root).save(dataset)
    space = SearchSpace(backbones=(backbone,), adaptations=("lora",), lora_ranks=(8,),
                        lora_alpha_ratios=(2.0,), lora_targets=("query,value",),
                        poolings=("mean",),
                        head_layers_range=(1, 1), head_widths=(64,), activations=("gelu",),
                        batch_sizes=(16,), max_epochs_range=(3, 3), contrastive_weight_range=(
                            0.0, 0.0), layers_range=(2, 2))
    seconds = {}
    try:
        for workers in (1, 2):
            config = SearchConfig(f"scaling-{workers}", space, n_trials=trials,
                                  sampler="random", pruner="none", patience=3, seed=5)
            study = open_study(config, dataset, root=root, storage=register(url),
                               dataset_path=stored.path)
            env = {**os.environ, "ESM_NAS_STORAGE": url, "ESM_NAS_HOME": str(root),
                   "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // 2))}
            start = time.perf_counter()
            procs = [subprocess.Popen(
                [sys.executable, "-m", "nas_core", "worker", "--study", config.study_name,
                 "--device", "cpu", "--seed-offset", str(i)], cwd=ROOT, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                for i in range(workers)]
            for proc in procs:
                _, err = proc.communicate()
                if proc.returncode:
                    raise RuntimeError(err[-3000:])
            seconds[workers] = time.perf_counter() - start
            assert len(counted_trials(study)) == trials
    finally:
        if server:
            server.stop()
    per_hour = {w: 3600 * trials / s for w, s in seconds.items()}
    say(f"worker_scaling: {per_hour[2] / per_hour[1]:.2f}")
    say(f"  1 worker: {per_hour[1]:.0f} trials/h ({seconds[1]:.1f} s for {trials}); 2 workers: "
        f"{per_hour[2]:.0f} trials/h ({seconds[2]:.1f} s); each worker "
        f"{max(1, (os.cpu_count() or 2) // 2)} CPU thread(s), "
        f"{'PostgreSQL' if server else 'SQLite'} study store, wall time including process start")


def family_dataset(n: int, family_size: int = 10, seed: int = 0) -> Dataset:
    """Protein families: ancestors of 100-500 residues, each with ``family_size`` descendants
    carrying 5-70% substitutions (so pairs span every identity), labelled per family."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], []
    for f in range(n // family_size):
        ancestor = rng.choice(AMINO, size=int(rng.integers(100, 500)))
        for _ in range(family_size):
            child = ancestor.copy()
            hit = rng.random(len(child)) < rng.uniform(0.05, 0.7)
            child[hit] = rng.choice(AMINO, size=int(hit.sum()))
            seqs.append("".join(child))
            labels.append("a" if f % 2 else "b")
    frame = pd.DataFrame({"id": None, "sequence": seqs, "label": labels, "split": None,
                          "where": None})
    frame = frame.drop_duplicates("sequence").reset_index(drop=True)
    return Dataset(frame, "binary", ["a", "b"], "families")


def bench_split(n: int) -> None:
    """Wall time of the homology-aware split (MMseqs2 all-against-all, clustering, assignment,
    nearest-training identity) and of the random split, on the same sequences."""
    from nas_core.data import homology
    from nas_core.data.options import SplitOptions
    from nas_core.data.splits import assign_splits

    dataset = family_dataset(n)
    homology._all_hits.cache_clear()
    start = time.perf_counter()
    out, notes = assign_splits(dataset, SplitOptions(method="homology", identity=0.3))
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    random_split, _ = assign_splits(dataset, SplitOptions(method="random"))
    random_seconds = time.perf_counter() - start  # reuses the alignments (same process)
    leak = {name: (frame.part("test")["nearest_train_identity"] >= 0.3).mean()
            for name, frame in (("homology", out), ("random", random_split))}
    say(f"homology_split_seconds_{len(dataset.frame)}: {seconds:.1f}")
    say(f"  {notes[0].message} Test sequences with >=30% identity to a training sequence: "
        f"{leak['homology']:.1%} (homology split) vs {leak['random']:.1%} (random split, "
        f"{random_seconds:.1f} s with the alignments already computed); "
        f"{(os.cpu_count() or 1)} cores")


PEAK_MB = """
def peak_mb():
    # VmHWM: this process's own peak. ru_maxrss would inherit the benchmark's (fork + exec).
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

RSS_CHILD = PEAK_MB + """
import json, resource, sys, time
from benchmarks.run import synthetic_dataset
from nas_core.runtime.launch import run_search
from nas_core.search.config import SearchConfig
from nas_core.search.space import SearchSpace

dataset = synthetic_dataset({n})
space = SearchSpace(backbones=({backbone!r},), adaptations=("frozen",),
                    poolings=("mean", "cls"), max_epochs_range=(3, 3), batch_sizes=(64,))
start = time.perf_counter()
report = run_search(SearchConfig("rss", space, n_trials=3), dataset, {out!r}, root={out!r})
print(json.dumps({{"rss_mb": peak_mb(),
                  "seconds": time.perf_counter() - start, "n": len(dataset.frame),
                  "tokens": int(dataset.frame["sequence"].str.len().sum())}}))
"""


def bench_rss(backbone, workdir, n) -> None:
    code = RSS_CHILD.format(root=str(ROOT), n=n, backbone=backbone,
                            out=str(Path(workdir) / "rss"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "ESM_NAS_HOME": str(Path(workdir) / "rss")})
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    say(f"peak_rss_mb: {result['rss_mb']:.0f}")
    say(f"  search of 3 frozen-backbone trials on {result['n']:,} sequences "
        f"({result['tokens']:,} residues) in {result['seconds']:.1f} s, measured in a fresh "
        "process (VmHWM)")


def bench_gpu(workdir) -> None:
    """Tokens/s of the real ESM-2 8M and 35M shapes (random weights), bf16+SDPA vs fp32
    eager, forward+backward."""
    from transformers import EsmConfig, EsmModel

    device = torch.device("cuda")
    for name, layers, hidden, heads in (("esm2_t6_8M", 6, 320, 20),
                                        ("esm2_t12_35M", 12, 480, 20)):
        rates = {}
        for mode in ("bf16+sdpa", "fp32+eager"):
            config = EsmConfig(vocab_size=33, hidden_size=hidden, num_hidden_layers=layers,
                               num_attention_heads=heads, intermediate_size=4 * hidden,
                               position_embedding_type="rotary", pad_token_id=1,
                               attn_implementation="sdpa" if mode == "bf16+sdpa" else "eager")
            model = EsmModel(config, add_pooling_layer=False).to(device)
            tokens = torch.randint(4, 24, (32, 512), device=device)
            mask = torch.ones_like(tokens)
            for step in range(13):
                if step == 3:
                    torch.cuda.synchronize()
                    start = time.perf_counter()
                with torch.autocast("cuda", dtype=torch.bfloat16,
                                    enabled=mode == "bf16+sdpa"):
                    out = model(input_ids=tokens, attention_mask=mask).last_hidden_state
                out.float().mean().backward()
            torch.cuda.synchronize()
            rates[mode] = 10 * tokens.numel() / (time.perf_counter() - start)
        say(f"gpu_tokens_per_s_{name}: {rates['bf16+sdpa'] / rates['fp32+eager']:.2f}x")
        say(f"  bf16+SDPA: {rates['bf16+sdpa']:,.0f} tokens/s; fp32 eager: "
            f"{rates['fp32+eager']:,.0f} tokens/s (batch 32 x 512, forward+backward)")


def append_results(command: str, occasion: str) -> None:
    """Add what ``say`` printed to benchmarks/RESULTS.md under ``command`` and the date."""
    with open(ROOT / "benchmarks" / "RESULTS.md", "a") as f:
        f.write(f"\n`{command}`, {time.strftime('%Y-%m-%d')} ({occasion}):\n\n```\n"
                + "\n".join(LINES) + "\n```\n")


def random_twin(directory: Path, backbone: str = "esm2-proteomes-0.8M") -> Path:
    """A checkpoint of a shipped backbone's shape with random weights: the same search on it
    says what the pretrained weights bring (random weights show mechanics, not value)."""
    shipped = resolve(str(SHIPPED_DIR / backbone))
    return make_tiny_backbone(directory, layers=shipped.layers, hidden=shipped.hidden,
                              heads=shipped.heads, intermediate=shipped.intermediate)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, GPU: {gpu}; Python "
            f"{platform.python_version()}, torch {torch.__version__}, {platform.system()}")


INGEST_CHILD = """
import io, json, resource, sys, time""" + PEAK_MB + """
import pandas as pd
from nas_core.data.reading import DataFileError, ReadLimits, read_raw
path, how, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
try:
    if how == "whole":  # the reader before streaming: the file, its text and the table at once
        text = open(path, "rb").read().decode("utf-8-sig")
        n = len(pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False))
    else:
        n = len(read_raw(path, limits=ReadLimits(max_rows=rows)).frame)
    outcome = "read"
except DataFileError:
    n, outcome = 0, "refused"
print(json.dumps({"seconds": time.perf_counter() - start, "rows": n, "outcome": outcome,
                  "rss_mb": peak_mb()}))
"""


def _ingest(path: Path, how: str, rows: int) -> dict:
    out = subprocess.run([sys.executable, "-c", INGEST_CHILD, str(path), how, str(rows)],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_ingest(workdir, megabytes: int) -> None:
    """Reading a large CSV: streamed (now) vs whole-file (before), each in a fresh process;
    then the same file refused at the default row limit."""
    rng = np.random.default_rng(0)
    path = Path(workdir) / "large.csv"
    with open(path, "w") as out:
        out.write("sequence,label\n")
        while out.tell() < megabytes * 2**20:
            block = rng.choice(AMINO, size=(10_000, 180))
            out.write("".join("".join(r) + f",{v:.3f}\n" for r, v in
                              zip(block, rng.random(10_000))))
    size_mb = path.stat().st_size / 2**20
    streamed, whole = _ingest(path, "stream", 10**9), _ingest(path, "whole", 10**9)
    refused = _ingest(path, "stream", ReadLimits().max_rows)
    say(f"ingest_peak_memory_ratio: {whole['rss_mb'] / streamed['rss_mb']:.2f}")
    rate = {k: size_mb / r["seconds"] for k, r in (("stream", streamed), ("whole", whole))}
    say(f"  {size_mb:.0f} MB CSV, {streamed['rows']:,} rows: streamed {rate['stream']:.0f} MB/s, "
        f"peak RSS {streamed['rss_mb']:.0f} MB; whole-file read {rate['whole']:.0f} MB/s, peak "
        f"RSS {whole['rss_mb']:.0f} MB")
    say(f"ingest_refusal_seconds: {refused['seconds']:.2f}")
    say(f"  the same file past the default limit of {ReadLimits().max_rows:,} rows: "
        f"{refused['outcome']} after {refused['seconds']:.2f} s, peak RSS "
        f"{refused['rss_mb']:.0f} MB")


def bench_estimate(backbones: dict[str, str], workdir) -> None:
    """Estimate ÷ actual over a few searches: the Search page's range (from this machine's
    measured step times) against the wall time of the same search, each in a fresh study."""
    from nas_core.search.config import SearchConfig
    from nas_core.search.presets import presets
    from nas_core.search.study import open_study, optimize
    from nas_core.search.throughput import Throughput, estimate

    cases = [("Quick, 2-layer", backbones["small"], synthetic_dataset(400, seed=3, low=20,
                                                                       high=40), "Quick", 4),
             ("Balanced, 2-layer", backbones["small"], synthetic_dataset(400, seed=4,
                                                                          high=200),
              "Balanced", 3),
             ("Balanced, 6-layer", backbones["big"], synthetic_dataset(300, seed=5,
                                                                        high=300),
              "Balanced", 3)]
    ratios, inside, parts = [], 0, []
    for i, (title, backbone, dataset, preset_name, n_trials) in enumerate(cases):
        space = presets((backbone,))[preset_name].space
        expected = estimate(space, n_trials, len(dataset.part("train")),
                            len(dataset.part("valid")),
                            float(dataset.frame["sequence"].str.len().mean()), "cpu",
                            Throughput())
        config = SearchConfig(f"estimate-{i}", space, n_trials=n_trials, seed=i)
        started = time.perf_counter()
        optimize(open_study(config, dataset), config, dataset)
        actual = time.perf_counter() - started
        middle = (expected.low * expected.high) ** 0.5
        ratios.append(middle / actual)
        inside += expected.low <= actual <= expected.high
        parts.append(f"{title} x{n_trials}: {expected.low:.0f}-{expected.high:.0f} s "
                     f"estimated, {actual:.0f} s actual")
    geo = float(np.exp(np.mean(np.log(ratios))))
    say(f"estimate_over_actual: {geo:.2f}")
    say(f"  middle of the range / wall time, geometric mean of {len(ratios)} searches "
        f"(goal 0.5-2); actual inside the range in {inside} of {len(ratios)}; "
        + "; ".join(parts) + "; random-weight backbones, step times measured once per "
        "backbone and adaptation")


def bench_token_batches(backbone: str, workdir) -> None:
    """One LoRA trial on 4,000 peptides of 21 residues (the SUMOylation-window shape), batch 32,
    5 epochs: fixed 32-sequence batches against batches filled to 4,096 tokens."""
    from dataclasses import replace as _replace

    from nas_core.search.config import SearchConfig
    from nas_core.search.study import open_study, optimize

    dataset = synthetic_dataset(4000, seed=7, low=21, high=22)
    space = SearchSpace(backbones=(backbone,), adaptations=("lora",), batch_sizes=(32,),
                        max_epochs_range=(5, 5), lr_range=(1e-3, 1e-3), poolings=("mean",),
                        head_layers_range=(1, 1), head_widths=(64,), lora_ranks=(8,),
                        contrastive_weight_range=(0.0, 0.0))
    base = SearchConfig("tokens-off", space, n_trials=1, pruner="none", patience=10,
                        min_batch_tokens=0)
    rows = {}
    for name, config in (("32 sequences", base),
                         ("4,096 tokens", _replace(base, study_name="tokens-on",
                                                   min_batch_tokens=4096))):
        started = time.perf_counter()
        study = open_study(config, dataset)
        optimize(study, config, dataset)
        rows[name] = (time.perf_counter() - started, study.trials[0].values[0])
    (off_s, off_auc), (on_s, on_auc) = rows["32 sequences"], rows["4,096 tokens"]
    say(f"token_batch_speedup: {off_s / on_s:.2f}x")
    say(f"  LoRA trial, {len(dataset.part('train'))} training peptides of 21 residues, 5 "
        f"epochs: batches of 32 sequences {off_s:.1f} s (validation ROC-AUC {off_auc:.3f}); "
        f"filled to 4,096 tokens (178 peptides) {on_s:.1f} s (ROC-AUC {on_auc:.3f}); 2-layer "
        "x 32 backbone with random weights, 2 CPU threads")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller data (about 2 minutes)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--write", action="store_true", help="write benchmarks/RESULTS.md")
    parser.add_argument("--only", default=None, help="run one figure: cache, overhead, "
                        "bucketing, pruning, rss, ingest, split, scaling, estimate, tokens, gpu")
    args = parser.parse_args()

    def wanted(name: str) -> bool:
        return args.only in (None, name)

    torch.manual_seed(0)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    device = torch.device(args.device)
    n = 300 if args.quick else 800
    with tempfile.TemporaryDirectory() as workdir:
        os.environ["ESM_NAS_HOME"] = str(Path(workdir) / "ws")
        backbone = str(make_tiny_backbone(Path(workdir) / "tiny6", layers=6, hidden=64,
                                          heads=4))
        small = str(make_tiny_backbone(Path(workdir) / "tiny2", layers=2, hidden=32, heads=4))
        dataset = synthetic_dataset(n)
        data = SearchData.from_dataset(dataset)
        say(f"machine: {machine()}")
        say(f"data: {len(dataset.frame)} synthetic sequences, 50-600 residues "
            f"(mean {dataset.frame['sequence'].str.len().mean():.0f}); tiny ESM-2-shaped "
            "backbones with random weights (6 layers x 64, 2 layers x 32)")
        if wanted("cache"):
            bench_cache(backbone, data, workdir, epochs=5, device=device)
        if wanted("overhead"):
            bench_engine_overhead(backbone, data, device)
        if wanted("bucketing"):
            bench_bucketing(backbone, data, device)
        if wanted("pruning"):
            bench_pruning(small, dataset, workdir, trials=12)
        if wanted("rss"):
            bench_rss(small, workdir, 5_000 if args.quick else 20_000)
        if wanted("ingest"):
            bench_ingest(workdir, 50 if args.quick else 200)
        if wanted("split"):
            bench_split(5_000 if args.quick else 20_000)
        if wanted("scaling"):
            bench_worker_scaling(small, dataset, workdir, trials=6 if args.quick else 12)
        if wanted("tokens"):
            bench_token_batches(small, workdir)
        if wanted("estimate"):
            bench_estimate({"small": small, "big": backbone}, workdir)
        if args.device == "cuda" and wanted("gpu"):
            bench_gpu(workdir)
    if args.write and args.only is None:
        text = ("# Benchmark results\n\n`python -m benchmarks.run" +
                (" --quick" if args.quick else "") + f" --device {args.device}`, "
                f"{time.strftime('%Y-%m-%d')}.\n\n```\n" + "\n".join(LINES) + "\n```\n")
        (ROOT / "benchmarks" / "RESULTS.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
