"""Builders the tests share: paths, the tiny search space, the shipped datasets split once.

Test doubles of services (the loopback Hub, the PostgreSQL server) live beside this module in
``fakehub.py`` and ``pgserver.py``; fixtures that hand these out are in ``conftest.py``.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import torch

from nas_core.common.text import WORD_JOINER
from nas_core.data.dataset import Dataset
from nas_core.data.options import SplitOptions
from nas_core.data.splits import assign_splits
from nas_core.data.store import DatasetStore, StoredDataset
from nas_core.data.validation import load_dataset, load_flip
from nas_core.search.space import SearchSpace
from nas_core.search.storage import make_storage

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"


def tiny_space(backbone: str | Path, *, epochs: int = 2, **kw) -> SearchSpace:
    """A search space over the tiny backbone whose trials take seconds on a CPU (no head or
    width pruning unless asked: a pruned trial trains twice)."""
    base: dict = dict(backbones=(str(backbone),), max_epochs_range=(epochs, epochs),
                      lr_range=(1e-3, 1e-2), batch_sizes=(32,), heads_kept=(1.0,),
                      ffn_kept=(1.0,))
    base.update(kw)
    return SearchSpace(**base)


@functools.lru_cache(maxsize=8)
def _split(name: str, method: str) -> Dataset:
    result = load_dataset(ASSETS / name)
    assert result.dataset is not None, result.problems
    return assign_splits(result.dataset, SplitOptions(method=method))[0]


def split_example(name: str = "amp_vs_transmembrane.csv", method: str = "homology") -> Dataset:
    """A shipped dataset, validated and split once per test session (MMseqs2 runs once)."""
    dataset = _split(name, method)
    return Dataset(dataset.frame.copy(), dataset.task, list(dataset.label_names or []) or None,
                   dataset.name)


def store_example(name: str = "amp_vs_transmembrane.csv", *, as_name: str | None = None,
                  root=None) -> StoredDataset:
    """The split example stored in the (test's) workspace, as an upload named ``as_name``."""
    dataset = split_example(name)
    return DatasetStore(root).save(dataset, source=as_name or str(ASSETS / name),
                                   name=Path(as_name).stem if as_name else None)


def wait_for(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.2)


def study_of(job, workspace=None) -> optuna.Study:
    """The job's study, once its thread has created it."""
    found: list[optuna.Study] = []

    def exists() -> bool:
        try:
            found.append(optuna.load_study(study_name=job.study_name,
                                           storage=make_storage(job.storage)))
        except KeyError:
            return False
        return True

    wait_for(exists)
    return found[-1]


def shown(markdown: str) -> str:
    """What a reader sees of a message that the app escaped with ``md_text`` (AppTest gives the
    Markdown source)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace(WORD_JOINER, "")


def out_of_memory_once(real: Callable, batch_sizes: list[int]) -> Callable:
    """``real`` (a training function), raising a simulated CUDA out-of-memory error on its
    first call; every call's batch size is recorded in ``batch_sizes``."""
    def train(model, *args, **kwargs):
        batch_sizes.append(model.arch.batch_size)
        if len(batch_sizes) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(model, *args, **kwargs)
    return train


SS = ASSETS / "secondary_structure"


@functools.lru_cache(maxsize=2)
def _residue_example(n_train: int, n_valid: int, n_test: int) -> Dataset:
    result = load_flip(SS / "sequences.fasta", SS / "labels.fasta", SS / "mask.fasta")
    assert result.dataset is not None, result.problems
    frame = result.dataset.frame
    keep = [i for part, n in (("train", n_train), ("valid", n_valid), ("test", n_test))
            for i in frame.index[frame["split"] == part][:n]]
    subset = Dataset(frame.loc[keep].reset_index(drop=True), result.dataset.task,
                     result.dataset.label_names, "secondary_structure")
    return assign_splits(subset, SplitOptions())[0]


def residue_example(n_train: int = 60, n_valid: int = 15, n_test: int = 25) -> Dataset:
    """The shipped FLIP secondary-structure chains (per-residue H/E/C), the first chains of each
    split of the file, with each test chain's identity to its nearest training chain."""
    dataset = _residue_example(n_train, n_valid, n_test)
    return Dataset(dataset.frame.copy(), dataset.task, list(dataset.label_names or []),
                   dataset.name)


def open_page(page: str, browser: str, user: str = "alice"):
    """The app from its entry point (app.py) as ``user`` in browser ``browser``, switched to
    ``page``: what a visitor who clicks that page sees."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["browser_id"] = browser
    at.session_state["user_name"] = user
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


FRESH_CHECK = """
print(json.dumps({"out": out, "loaded": sorted(
    m for m in sys.modules if m.split(".")[0] in ("nas_core", "peft"))}))
"""


def run_fresh(script: str, directory, sequences: list[str]):
    """``script`` (which sets ``out``) in a new interpreter with only torch and transformers
    importable from the exported model ``directory``; its ``out``, after checking that
    neither the engine nor peft was loaded."""
    import json
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script + FRESH_CHECK, str(directory),
                          json.dumps(sequences)], capture_output=True, text=True,
                         cwd=directory, timeout=300, env={**os.environ, "PYTHONPATH": ""})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    return result["out"]


def flip_subset(folder: Path, counts: tuple[int, int, int] = (60, 15, 25)) -> list[Path]:
    """The first ``counts`` (train, validation, test) chains of the shipped FLIP files, written
    as sequences / labels / mask FASTA files in ``folder`` (the same layout, fewer chains)."""
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    records = {}
    for name in ("sequences.fasta", "labels.fasta", "mask.fasta"):
        with open(SS / name) as f:
            records[name] = list(SimpleFastaParser(f))
    left = dict(zip(("train", "valid", "test"), counts))
    keep = []
    for i, (header, _) in enumerate(records["labels.fasta"]):
        part = "test" if "SET=test" in header else (
            "valid" if "VALIDATION=True" in header else "train")
        if left[part]:
            left[part] -= 1
            keep.append(i)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, recs in records.items():
        paths.append(folder / name)
        paths[-1].write_text("".join(f">{recs[i][0]}\n{recs[i][1]}\n" for i in keep))
    return paths


def mutate(seq: str, positions: list[int]) -> str:
    """``seq`` with a substitution at each of ``positions`` (W, or A where W already is)."""
    chars = list(seq)
    for p in positions:
        chars[p] = "W" if chars[p] != "W" else "A"
    return "".join(chars)


def keyed(widgets, start: str, end: str = ""):
    """The one widget of an AppTest list whose key starts with ``start`` and ends with ``end``:
    the Search page keys its widgets to the dataset and preset they were drawn for."""
    found = [w for w in widgets if (w.key or "").startswith(start) and w.key.endswith(end)]
    assert len(found) == 1, [w.key for w in widgets]
    return found[0]


def measured_search_page(at) -> None:
    """Open Search and wait for its background speed measurement, whose result changes the
    Quick preset's numbers and so the keys of the widgets drawn for them."""
    from ui.engine import measurements

    at.switch_page("app_pages/search.py").run()
    wait_for(lambda: not measurements()._running, timeout=180)
    at.run()


def form_field(widgets, form: str, name: str):
    """A field of a publish form (``form``: its key, e.g. ``publish`` or ``publish_ensemble``),
    whose widget keys carry the number of the form's visit (a new one for each model shown)."""
    pattern = re.compile(rf"^{form}_[0-9]+_{name}$")
    found = [w for w in widgets if pattern.match(w.key or "")]
    assert len(found) == 1, [w.key for w in widgets]
    return found[0]


def has_form_field(widgets, form: str, name: str) -> bool:
    pattern = re.compile(rf"^{form}_[0-9]+_{name}$")
    return any(pattern.match(w.key or "") for w in widgets)


PAIRS = ASSETS / "pairs"


def pair_subset(folder: Path, *, n_pos: int = 120, n_neg: int = 480, max_len: int = 160,
                seed: int = 0) -> tuple[Path, Path]:
    """A seeded subset of the shipped E. coli pairs (proteins of at most ``max_len``
    residues, so a tiny model trains in seconds), written in the same pairs-file + FASTA
    layout: ``(pairs.tsv, proteins.fasta)``."""
    import gzip
    import random

    sequences: dict[str, str] = {}
    current = ""
    with gzip.open(PAIRS / "ecoli_proteins.fasta.gz", "rt") as handle:
        for line in handle:
            if line.startswith(">"):
                current = line[1:].strip()
                sequences[current] = ""
            else:
                sequences[current] += line.strip()
    rows = [line.rstrip("\n").split("\t") for line in open(PAIRS / "ecoli_pairs.tsv")]
    rows = [r for r in rows if max(len(sequences[r[0]]), len(sequences[r[1]])) <= max_len]
    rng = random.Random(seed)
    chosen = (rng.sample([r for r in rows if r[2] == "1.0"], n_pos)
              + rng.sample([r for r in rows if r[2] == "0.0"], n_neg))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pairs.tsv").write_text("".join("\t".join(r) + "\n" for r in chosen))
    used = sorted({p for r in chosen for p in r[:2]})
    (folder / "proteins.fasta").write_text("".join(f">{i}\n{sequences[i]}\n" for i in used))
    return folder / "pairs.tsv", folder / "proteins.fasta"
