"""Masked-language-model pretraining: the masking recipe, the corpus reader's refusals, the
held-out split, a real run whose loss falls, its checkpoint reloaded by plain transformers, and
a run killed mid-way that resumes exactly where it stopped."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nas_core.backbones.registry import ESM2_VOCAB, PRETRAINED_FLAG, Pretraining, resolve
from nas_core.data import homology
from nas_core.pretraining.batches import PAD_ID, collate, epoch_batches
from nas_core.pretraining.config import PretrainConfig
from nas_core.pretraining.corpus import CorpusError, read_corpus
from nas_core.pretraining.holdout import hold_out
from nas_core.pretraining.masking import IGNORE, MASK_ID, MaskingRecipe, mask_tokens
from nas_core.pretraining.run import PretrainError, pretrain
from nas_core.publishing.predict import Predictor
from nas_core.runtime.launch import run_search
from nas_core.search.config import SearchConfig
from tests.helpers import ROOT, run_fresh, tiny_space

AMINO = "ACDEFGHIKLMNPQRSTVWY"


def family_corpus(path: Path, families: int = 30, members: int = 8, length: int = 80,
                  seed: int = 0) -> Path:
    """Protein families: a random ancestor each, members with 10% of residues changed (so a
    family is one MMseqs2 cluster and families are unrelated)."""
    rng = np.random.default_rng(seed)
    records = []
    for f in range(families):
        ancestor = rng.choice(list(AMINO), length)
        for m in range(members):
            child = ancestor.copy()
            where = rng.random(length) < 0.1
            child[where] = rng.choice(list(AMINO), int(where.sum()))
            records.append(f">fam{f}_m{m}\n{''.join(child)}\n")
    path.write_text("".join(records))
    return path


def tiny(**changes) -> PretrainConfig:
    settings = dict(shape="2,32,4,64", tokens=40_000, max_length=64, batch_tokens=1_100,
                    lr=3e-3, warmup=0.1, validation=4, eval_points=3, eval_residues=2_000,
                    seed=0)
    settings.update(changes)
    return PretrainConfig(**settings)


def test_the_masking_recipe_on_a_constructed_batch():
    n, width = 400, 100
    ids = torch.randint(4, 24, (n, width + 2))
    ids[:, 0], ids[:, -1] = 0, 2  # <cls> ... <eos>
    ids[::3, 60:] = PAD_ID  # every third row is shorter
    before = ids.clone()
    inputs, labels = mask_tokens(ids, torch.Generator().manual_seed(1), MaskingRecipe())
    residues = (before >= 4) & (before <= 28)
    selected = labels != IGNORE
    assert not (selected & ~residues).any()  # <cls>, <eos> and padding are never selected
    assert (labels[selected] == before[selected]).all()  # labels only where selected
    assert (inputs[~selected] == before[~selected]).all()  # nothing else changes
    share = selected.sum() / residues.sum()
    assert 0.14 < share < 0.16
    masked = (inputs == MASK_ID) & selected
    kept = (inputs == before) & selected
    assert 0.77 < masked.sum() / selected.sum() < 0.83
    assert 0.08 < kept.sum() / selected.sum() < 0.125  # 10% kept (+ random hits itself)
    random_ = selected & ~masked & (inputs != before)
    assert ((inputs[random_] >= 4) & (inputs[random_] <= 23)).all()  # standard residues only
    again, _ = mask_tokens(before, torch.Generator().manual_seed(1), MaskingRecipe())
    assert torch.equal(again, inputs)  # the generator alone decides


def test_batches_fill_the_token_budget_and_repeat_for_a_seed():
    lengths = np.random.default_rng(0).integers(20, 400, 500)
    batches = epoch_batches(lengths, epoch=3, seed=5, max_length=128, batch_tokens=2_000)
    assert sorted(r for b in batches for r in b.rows) == list(range(500))  # each once
    assert all(b.padded_tokens <= 2_000 for b in batches)
    same = epoch_batches(lengths, epoch=3, seed=5, max_length=128, batch_tokens=2_000)
    assert all((a.rows == b.rows).all() and (a.starts == b.starts).all()
               for a, b in zip(batches, same))
    useful = sum(min(128, lengths[r]) + 2 for b in batches for r in b.rows)
    assert useful / sum(b.padded_tokens for b in batches) > 0.9  # little padding


def test_bad_corpora_get_clear_messages(tmp_path):
    empty = tmp_path / "empty.fasta"
    empty.write_text("")
    with pytest.raises(CorpusError, match="holds no sequences"):
        read_corpus(empty)
    dna = tmp_path / "genes.fasta"
    dna.write_text("".join(f">g{i}\n{'ACGT' * 20}{'ACGT'[i % 4]}\n" for i in range(5)))
    with pytest.raises(CorpusError, match="DNA or RNA"):
        read_corpus(dna)
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("sequence,label\n" + "".join(
        f"{'MKV' * 5}{AMINO[i]}{AMINO[i]},{i % 2}\n" for i in range(20)))
    with pytest.raises(CorpusError, match="has a label column.*--ignore-labels"):
        read_corpus(labelled)
    assert len(read_corpus(labelled, ignore_labels=True)) == 20
    bomb = tmp_path / "bomb.fasta.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        out.write(b">x\n")
        for _ in range(80):
            out.write(b"A" * 2**20)
    assert bomb.stat().st_size < 2**20
    with pytest.raises(CorpusError, match="inflates to more than"):
        read_corpus(bomb)
    table = tmp_path / "unlabelled.tsv"
    table.write_text("id\tsequence\n" + "".join(f"p{i}\t{'MKV' * 5}{AMINO[i]}\n"
                                                 for i in range(20)))
    assert len(read_corpus(table)) == 20
    not_fasta = tmp_path / "table.fasta"
    not_fasta.write_text("sequence\nMKVLAAGWWQ\n")
    with pytest.raises(CorpusError, match="does not start with a '>' header"):
        read_corpus(not_fasta)
    mixed = tmp_path / "mixed.fasta"
    mixed.write_text(">a\nMKVLAAGWWQ\n>b\nMKVLAAGWWQ\n>c\nMK\n>d\nMKV1LAAGWW\n>e\nACGTACGTACGT\n")
    corpus = read_corpus(mixed)
    assert len(corpus) == 1 and corpus.dropped == {
        "duplicate": 1, "too short": 1, "unknown characters": 1, "nucleotides": 1}


def test_the_validation_proteins_share_no_family_with_training(tmp_path):
    corpus = read_corpus(family_corpus(tmp_path / "fam.fasta"))
    holdout = hold_out(corpus, 3, 0.3, seed=0)
    assert len(holdout.valid) >= 3 and len(holdout.valid) % 8 == 0  # whole families
    assert sorted([*holdout.train, *holdout.valid]) == list(range(len(corpus)))
    hits = homology.search([corpus.text(i) for i in holdout.valid],
                           [corpus.text(i) for i in holdout.train])
    assert hits.empty or hits["identity"].max() < 0.3


def test_a_corpus_of_one_family_is_held_out_at_random_and_says_so(tmp_path):
    """An evotuning corpus (variants of one protein) has no unseen family: the run goes on
    with validation proteins drawn at random, and the card and lineage say so."""
    corpus = family_corpus(tmp_path / "one.fasta", families=1, members=60)
    holdout = hold_out(read_corpus(corpus), 6, 0.3, seed=0)
    assert holdout.method == "random" and len(holdout.valid) == 6
    assert sorted([*holdout.train, *holdout.valid]) == list(range(60))
    lines: list[str] = []
    done = pretrain(corpus, tmp_path / "out", tiny(tokens=5_000, eval_points=1), say=lines.append)
    assert any("one family" in line and "drawn at random" in line for line in lines)
    lineage = Pretraining.from_dict(
        json.loads((done.out_dir / "config.json").read_text())[PRETRAINED_FLAG])
    assert lineage.holdout == "random"
    assert "held out at random: the corpus is one family" in (
        done.out_dir / "README.md").read_text()


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    corpus = family_corpus(root / "fam.fasta")
    lines: list[str] = []
    done = pretrain(corpus, root / "out", tiny(), say=lines.append)
    return root, done, lines


def test_pretraining_lowers_the_loss_and_exports_a_standard_checkpoint(pretrained):
    root, done, lines = pretrained
    history = json.loads((done.out_dir / "pretraining_history.json").read_text())
    losses = [row["loss"] for row in history["train"]]
    assert np.mean(losses[-3:]) < losses[0] - 0.3  # from about ln(20) down
    assert len(history["valid"]) == 4  # the start and the three measurement points
    assert done.tokens >= 40_000 and done.steps > 30
    config = json.loads((done.out_dir / "config.json").read_text())
    assert config["architectures"] == ["EsmForMaskedLM"] and "esm_nas_untrained" not in config
    lineage = config["esm_nas_pretrained"]
    assert lineage["tokens_seen"] == done.tokens and lineage["from"] == "random 2,32,4,64"
    card = (done.out_dir / "README.md").read_text()
    assert "Held-out perplexity" in card and "amino-acid frequencies" in card
    spec = resolve(str(done.out_dir))  # the registry takes it as a backbone
    assert not spec.untrained and spec.layers == 2 and spec.lineage is not None
    assert spec.lineage.tokens_seen == done.tokens
    assert "pretrained here from random weights" in spec.label
    assert "a stand-in for ESM-2, not a substitute" in spec.label


def test_the_checkpoint_reloads_with_transformers_alone(pretrained):
    _, done, _ = pretrained
    from transformers import EsmForMaskedLM, EsmTokenizer

    model = EsmForMaskedLM.from_pretrained(done.out_dir).eval()
    tokenizer = EsmTokenizer.from_pretrained(done.out_dir)
    batch = tokenizer(["MKTAYIAKQRQISFVKSHFSRQ"], return_tensors="pt")
    with torch.no_grad():
        mine = model(**batch).logits[0].numpy()
    script = ("import json, sys, torch\n"
              "from transformers import EsmForMaskedLM, EsmTokenizer\n"
              "model = EsmForMaskedLM.from_pretrained(sys.argv[1]).eval()\n"
              "tok = EsmTokenizer.from_pretrained(sys.argv[1])\n"
              "with torch.no_grad():\n"
              "    logits = model(**tok(json.loads(sys.argv[2]), return_tensors='pt')).logits\n"
              "out = logits[0].tolist()\n")
    theirs = run_fresh(script, done.out_dir, ["MKTAYIAKQRQISFVKSHFSRQ"])
    np.testing.assert_allclose(np.asarray(theirs), mine, atol=1e-5)


@pytest.mark.slow  # over 20 s on two cores
def test_a_search_and_its_export_build_on_the_pretrained_backbone(pretrained, workspace,
                                                                  peptides, tmp_path):
    """What comes after: a search (frozen and fine-tuned), its report naming the backbone as
    pretrained here, the exported model predicting."""
    _, done, _ = pretrained
    space = tiny_space(done.out_dir, adaptations=("frozen", "full"), layers_range=(2, 2))
    report = run_search(SearchConfig("on-pretrained", space, n_trials=2, seed=0), peptides,
                        tmp_path / "out")
    assert report is not None and report.best.backbone == str(done.out_dir)
    assert not report.best.backbone_untrained
    card = (tmp_path / "out" / "best_model" / "README.md").read_text()
    assert "untrained demo backbone" not in card
    frame = Predictor(tmp_path / "out" / "best_model").predict_sequences(["MKVLAAGWWQKRR"])
    assert len(frame) == 1


def test_a_second_run_in_the_folder_must_be_the_same_run(pretrained, tmp_path):
    root, done, _ = pretrained
    other = family_corpus(tmp_path / "other.fasta", seed=1)
    with pytest.raises(PretrainError, match="another corpus"):
        pretrain(other, done.out_dir, tiny())
    with pytest.raises(PretrainError, match="other settings"):
        pretrain(root / "fam.fasta", done.out_dir, tiny(lr=1e-3))


@pytest.mark.slow
def test_a_killed_run_resumes_where_it_stopped(tmp_path):
    """A real kill (SIGKILL) after the first checkpoint; the rerun of the same command ends
    with exactly the weights of a run that was never interrupted."""
    corpus = family_corpus(tmp_path / "fam.fasta")
    args = ["pretrain", str(corpus), "--shape", "2,32,4,64", "--tokens", "40000",
            "--max-length", "64", "--batch-tokens", "1100", "--lr", "0.003",
            "--validation", "4", "--eval-points", "4", "--eval-residues", "2000"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def cli(out: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "nas_core", *args, "--out", str(out)],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    straight = cli(tmp_path / "straight")
    assert straight.wait(timeout=600) == 0, straight.stdout.read() if straight.stdout else ""
    killed = cli(tmp_path / "killed")
    saved = tmp_path / "killed" / ".pretraining" / "checkpoint" / "position.json"
    deadline = time.monotonic() + 300
    while not saved.exists() or json.loads(saved.read_text())["position"]["step"] == 0:
        assert killed.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    step = json.loads(saved.read_text())["position"]["step"]
    resumed = cli(tmp_path / "killed")
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    assert f"resuming at step {step:,}" in output
    from safetensors.torch import load_file

    a = load_file(tmp_path / "straight" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    curve_a = json.loads((tmp_path / "straight" / "pretraining_history.json").read_text())
    curve_b = json.loads((tmp_path / "killed" / "pretraining_history.json").read_text())
    assert [r["step"] for r in curve_a["valid"]] == [r["step"] for r in curve_b["valid"]]


def test_collate_frames_each_crop():
    corpus_tokens = np.array([ESM2_VOCAB.index(c) for c in "MKVLAAGW" + "QQ"], dtype=np.uint8)
    from nas_core.pretraining.batches import Batch
    from nas_core.pretraining.corpus import Corpus

    corpus = Corpus(corpus_tokens, np.array([0, 8, 10]), ["a", "b"], "t", "f")
    ids = collate(corpus, Batch(np.array([0, 1]), np.array([2, 0]), 4))
    assert ids.tolist() == [[0, *corpus_tokens[2:6].tolist(), 2],
                            [0, *corpus_tokens[8:10].tolist(), 2, PAD_ID, PAD_ID]]
