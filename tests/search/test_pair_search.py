"""Pairs of proteins searched end to end on the shipped E. coli pairs (a subset of short
proteins, a tiny backbone): symmetric models are symmetric, the per-protein cache is the
uncached path, intervals resample proteins, and the exported pair model reloads in a fresh
process with only torch and transformers, predicting what the engine predicts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from nas_core.common.metrics import bootstrap_ci, protein_resamples
from nas_core.common.tasks import Task
from nas_core.data.options import IngestOptions, SplitOptions
from nas_core.data.pair_splits import proteins_of
from nas_core.data.store import DatasetStore, import_dataset
from nas_core.modeling.architecture import Architecture
from nas_core.modeling.batches import Encoded, encode_rows
from nas_core.modeling.build import build_model
from nas_core.modeling.cache import RepresentationCache
from nas_core.modeling.modules import HeadModel, TaskInfo, init_head
from nas_core.modeling.training import predict_outputs
from nas_core.publishing.predict import Predictor, predict_file
from nas_core.runtime.launch import run_search
from nas_core.search.config import SearchConfig
from tests.helpers import pair_subset, run_fresh, tiny_space


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    pairs_file, proteins = pair_subset(tmp_path_factory.mktemp("pairs"))
    outcome = import_dataset(pairs_file, proteins=proteins, options=IngestOptions(
        fixes=frozenset({"drop_conflicts"})), split_options=SplitOptions(pairs="both_unseen"))
    assert outcome.ok
    return outcome.dataset, pairs_file, proteins


def _arch(backbone, pair_head: str, **kw) -> Architecture:
    return Architecture(backbone=str(backbone), n_layers=2, pair_head=pair_head, **kw)


def test_a_symmetric_pair_model_scores_a_b_as_b_a(tiny_backbone, pairs):
    dataset = pairs[0]
    info = TaskInfo(Task.PAIR_BINARY, ["0.0", "1.0"])
    part = dataset.part("valid")
    swapped = part.rename(columns={"sequence": "sequence_2", "sequence_2": "sequence"})
    outputs = {}
    for head in ("symmetric", "concat"):
        torch.manual_seed(0)
        model, tokenizer = build_model(_arch(tiny_backbone, head, pooling="attention"), info)
        init_head(model, 0)
        outputs[head] = [predict_outputs(model, encode_rows(frame, dataset.task, model.arch,
                                                            np.zeros(len(frame)), tokenizer),
                                         device=torch.device("cpu"),
                                         pad_id=tokenizer.pad_token_id)
                         for frame in (part, swapped)]
    np.testing.assert_allclose(*outputs["symmetric"], atol=1e-6)
    assert not np.allclose(*outputs["concat"], atol=1e-4)  # order-sensitive, as it says


def test_the_per_protein_cache_gives_what_the_backbone_gives(tiny_backbone, pairs, tmp_path):
    dataset = pairs[0]
    info = TaskInfo(Task.PAIR_BINARY, ["0.0", "1.0"])
    arch = _arch(tiny_backbone, "symmetric", pooling="mean")
    model, tokenizer = build_model(arch, info)
    init_head(model, 3)
    part = dataset.part("train")
    uncached = encode_rows(part, dataset.task, arch, np.zeros(len(part)), tokenizer)
    proteins, partners = proteins_of(part)
    assert len(proteins) < 2 * len(part)  # proteins in several pairs are encoded once
    cache = RepresentationCache(tmp_path)
    features = cache.pooled(arch.backbone, proteins, [2], device=torch.device("cpu"))
    assert features[("mean", 2)].shape[0] == len(proteins)
    head = HeadModel(arch, info, features[("mean", 2)].shape[1])
    head.load_state_dict({k: v for k, v in model.state_dict().items()
                          if k.startswith(("head.", "pool."))})
    cached = Encoded(uncached.ids, np.zeros(len(part)), partners=partners,
                     features=np.asarray(features[("mean", 2)]))
    cpu = torch.device("cpu")
    np.testing.assert_allclose(
        predict_outputs(head, cached, device=cpu, pad_id=tokenizer.pad_token_id),
        predict_outputs(model, uncached, device=cpu, pad_id=tokenizer.pad_token_id),
        atol=1e-5)


def test_intervals_resample_proteins_not_pairs():
    # ten pairs share protein 0; forty others have proteins of their own
    partners = np.array([[0, i] for i in range(1, 11)] + [[2 * i, 2 * i + 1]
                                                           for i in range(20, 60)])
    resampled = list(protein_resamples(partners, n=300, seed=1))
    hub = np.arange(10)
    # the hub's ten pairs stand or fall with protein 0: all gone whenever it is not drawn
    # (about a third of the resamples), never one by one
    gone = [not np.isin(idx, hub).any() for idx in resampled]
    assert 0.2 < np.mean(gone) < 0.5
    for idx in resampled:
        counts = np.bincount(idx, minlength=50)[hub]
        drawn0 = np.gcd.reduce(counts[counts > 0]) if counts.any() else 0
        assert drawn0 == 0 or (counts % drawn0 == 0).all()  # multiples of protein 0's draws
    # a model right on the hub's pairs only: the protein bootstrap sees the dependence
    y = np.array([1] * 10 + [0, 1] * 20)
    p = np.where(np.arange(50) < 10, 0.9, 0.5)
    output = np.stack([1 - p, p], axis=1)
    by_pairs = bootstrap_ci(Task.PAIR_BINARY, y, output, n=300)["accuracy"]
    by_proteins = bootstrap_ci(Task.PAIR_BINARY, y, output, n=300, partners=partners)["accuracy"]
    assert by_proteins[1] - by_proteins[0] > by_pairs[1] - by_pairs[0]


@pytest.fixture(scope="module")
def searched(tiny_backbone, pairs, tmp_path_factory):
    dataset = pairs[0]
    out = tmp_path_factory.mktemp("pair-run")
    config = SearchConfig(space=tiny_space(tiny_backbone, adaptations=("frozen", "lora"),
                                           pair_heads=("symmetric", "cross")),
                          n_trials=4, study_name="pairs", ensemble_size=2, seed=1,
                          device="cpu")
    report = run_search(config, dataset, out, root=tmp_path_factory.mktemp("ws"))
    return report, out, dataset


def test_a_pair_search_is_tested_on_unseen_proteins_beside_its_reference(searched):
    report, out, dataset = searched
    assert report.metric == "average_precision"
    assert report.dataset.summary.pair_split == "both_unseen"
    assert "average_precision" in report.best.test and report.best.test_ci["average_precision"]
    assert "both partners" in report.baseline.model and "symmetric" in report.baseline.model
    assert report.baseline.test["average_precision"] is not None
    predictions = pd.read_csv(out / "test_predictions.csv")
    assert {"id_2", "sequence_2", "nearest_train_identity",
            "nearest_train_identity_2"} <= set(predictions.columns)
    assert (predictions[["nearest_train_identity", "nearest_train_identity_2"]] < 1).all().all()
    card = (out / "best_model" / "README.md").read_text()
    assert "both partners unseen" in card.lower()


FRESH = """
import json, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
directory, pairs = sys.argv[1], json.loads(sys.argv[2])
tokenizer = AutoTokenizer.from_pretrained(directory)
model = AutoModelForSequenceClassification.from_pretrained(directory, trust_remote_code=True)
first, second = [p[0] for p in pairs], [p[1] for p in pairs]
with torch.no_grad():
    p = model.eval()(**model.pair_inputs(tokenizer, first, second)).logits.softmax(-1)
out = {"p": p.tolist(), "class": type(model).__name__}
"""


def test_the_exported_pair_model_reloads_with_transformers_alone(searched):
    _, out, dataset = searched
    test = dataset.part("test").head(12)
    pairs = [[a, b] for a, b in zip(test["sequence"], test["sequence_2"])]
    for folder in ("best_model", "ensemble_model"):
        fresh = run_fresh(FRESH, out / folder, pairs)
        engine = Predictor(out / folder, device="cpu").predict_pairs(
            list(test["sequence"]), list(test["sequence_2"]))
        assert "Pair" in fresh["class"]
        np.testing.assert_allclose(np.array(fresh["p"])[:, 1], engine["p_1.0"], atol=1e-5)
    config = json.loads((out / "best_model" / "config.json").read_text())
    assert config["esm_nas"]["pair_split"] == "both_unseen"


def test_predict_takes_pairs_by_id_and_screens_one_bait_against_many(searched, pairs):
    _, out, _ = searched
    _, pairs_file, proteins = pairs
    frame, problems, metrics = predict_file(out / "best_model", pairs_file, proteins=proteins,
                                            device="cpu")
    assert len(frame) == len(pairs_file.read_text().splitlines())
    assert {"unlike_training", "unlike_training_2"} <= set(frame.columns)
    assert metrics is not None and "average_precision" in metrics
    bait = proteins.read_text().splitlines()[0][1:]
    ranked, _, _ = predict_file(out / "best_model", proteins, bait=bait, device="cpu")
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    assert ranked["p_1.0"].is_monotonic_decreasing


def test_test_these_next_ranks_candidate_pairs(searched, pairs):
    from nas_core.design.config import SuggestConfig
    from nas_core.design.suggest import SuggestError, suggest

    _, out, _ = searched
    _, pairs_file, proteins = pairs
    result = suggest(out, pairs_file, SuggestConfig(batch=5, goal="class", target_class="1.0"),
                     proteins=proteins)
    frame = result.frame
    assert result.ensemble and len(frame) == 5 and list(frame["rank"]) == [1, 2, 3, 4, 5]
    assert {"id", "id_2", "sequence", "sequence_2", "p_1.0", "uncertainty",
            "nearest_train_identity", "nearest_train_identity_2"} <= set(frame.columns)
    assert frame["why"].str.len().min() > 5
    with pytest.raises(SuggestError, match="ranks pairs of proteins"):
        suggest(out, proteins, SuggestConfig(batch=5, goal="class", target_class="1.0"))


def test_an_affinity_per_pair_is_searched_as_pair_regression(tiny_backbone, pairs, tmp_path):
    """A value per pair (here made from both partners' charge, so it can be learnt): the
    table layout with two sequence columns, pair regression end to end."""
    dataset = pairs[0]
    frame = dataset.frame
    charge = lambda s: sum(s.count(c) for c in "KR") / len(s)  # noqa: E731
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({
        "sequence_1": frame["sequence"], "sequence_2": frame["sequence_2"],
        "affinity": [round(charge(a) + charge(b) + rng.normal(0, 0.01), 4)
                     for a, b in zip(frame["sequence"], frame["sequence_2"])]})
    path = tmp_path / "affinity.csv"
    rows.to_csv(path, index=False)
    outcome = import_dataset(path, split_options=SplitOptions(pairs="random", method="random"))
    assert outcome.ok and outcome.dataset.task is Task.PAIR_REGRESSION
    config = SearchConfig(space=tiny_space(tiny_backbone, adaptations=("frozen",),
                                           pair_heads=("symmetric",)),
                          n_trials=2, study_name="affinity", ensemble_size=1, device="cpu")
    report = run_search(config, outcome.dataset, tmp_path / "run", root=tmp_path / "ws")
    assert report.metric == "spearman" and report.best.test_ci["spearman"]
    assert report.dataset.summary.pair_split == "random"
    assert "ridge regression" in report.baseline.model and "both partners" in \
        report.baseline.model
    assert report.baseline.test["spearman"] > 0.5  # the composition reference sees charge
    frame, _, _ = predict_file(tmp_path / "run" / "best_model", path, device="cpu")
    assert len(frame) == len(rows) and "prediction" in frame and "low_90%" in frame


def test_next_round_says_pairs_are_uploaded_again(pairs, tmp_path):
    from nas_core.data.extend import extend_dataset

    store = DatasetStore(tmp_path)
    record = store.save(pairs[0], source="pairs.tsv")
    result = extend_dataset(record, pairs[1], store=store)
    assert not result.ok and "pairs of proteins" in result.problems[0].message


def test_compress_says_it_does_not_take_pairs_and_what_to_do(searched):
    from nas_core.compression.compress import teacher_of
    from nas_core.compression.config import CompressError

    with pytest.raises(CompressError, match="protein pairs.*cross-encoder"):
        teacher_of(searched[1])
