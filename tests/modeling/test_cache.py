"""Cached frozen-backbone trials give the same model as running the backbone."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch

from nas_core.modeling.architecture import Architecture
from nas_core.modeling.batches import encode_split, length_batches
from nas_core.modeling.build import build_model, load_trial_checkpoint
from nas_core.modeling.cache import RepresentationCache
from nas_core.modeling.modules import TaskInfo
from nas_core.modeling.training import TrainSettings, predict_outputs
from nas_core.search.objective import SearchData, TrialContext, objective
from nas_core.search.space import SearchSpace
from tests.helpers import split_example


@pytest.fixture(scope="module")
def data():
    dataset = split_example()
    return SearchData.from_dataset(dataset)


def run_trial(tmp_path, tiny_backbone, data, pooling, cache, name):
    space = SearchSpace(backbones=(str(tiny_backbone),), adaptations=("frozen",),
                        poolings=(pooling,), layers_range=(2, 2), max_epochs_range=(3, 3),
                        batch_sizes=(16,), contrastive_weight_range=(0.3, 0.3))
    ctx = TrialContext(data=data, space=space, multi_objective=False,
                       training=TrainSettings("roc_auc", torch.device("cpu"), seed=7, patience=3),
                       checkpoint_dir=tmp_path / name, cache=cache)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: objective(t, ctx), n_trials=1)
    return study.trials[0]


@pytest.mark.parametrize("pooling", ["mean", "cls", "attention"])
def test_cached_and_uncached_trials_give_the_same_model(tmp_path, workspace, tiny_backbone,
                                                       data, pooling):
    cache = RepresentationCache(workspace)
    cached = run_trial(tmp_path, tiny_backbone, data, pooling, cache, "cached")
    plain = run_trial(tmp_path, tiny_backbone, data, pooling, None, "plain")
    assert cached.user_attrs["cached_features"] and not plain.user_attrs["cached_features"]
    assert cached.user_attrs["n_parameters"] == plain.user_attrs["n_parameters"]
    for a, b in zip(cached.user_attrs["history"], plain.user_attrs["history"], strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
    # both checkpoints rebuild a full model; their predictions agree
    sequences = data.val_sequences
    outs = []
    for trial in (cached, plain):
        model, tok = load_trial_checkpoint(__import__("pathlib").Path(
            trial.user_attrs["checkpoint"]))
        outs.append(predict_outputs(model, encode_split(sequences, np.zeros(len(sequences)),
                                                        tok), device=torch.device("cpu"),
                                    pad_id=1))
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)


def test_cache_is_reused_and_evicted_by_size(tmp_path, workspace, tiny_backbone, data):
    cache = RepresentationCache(workspace)
    seqs = data.train_sequences[:50]
    first = cache.pooled(str(tiny_backbone), seqs, [1, 2, 3], device=torch.device("cpu"))
    again = RepresentationCache(workspace).pooled(str(tiny_backbone), seqs, [1, 3],
                                                  device=torch.device("cpu"))
    np.testing.assert_array_equal(first[("mean", 3)], again[("mean", 3)])
    assert cache.misses == 1
    other = data.train_sequences[50:100]
    small = RepresentationCache(workspace, max_bytes=1)
    small.pooled(str(tiny_backbone), other, [1], device=torch.device("cpu"))
    entries = [p for p in (workspace / "cache").iterdir() if p.is_dir()]
    assert len(entries) == 1  # the older entry was evicted, the new one kept


def test_bucketing_does_not_change_predictions(tiny_backbone, data):
    arch = Architecture(backbone=str(tiny_backbone), n_layers=3, pooling="mean", dropout=0.0)
    model, tok = build_model(arch, TaskInfo("binary", ["AMP", "TM"]))
    enc = encode_split(data.val_sequences, np.zeros(len(data.val_sequences)), tok)
    bucketed = predict_outputs(model, enc, device=torch.device("cpu"), pad_id=1,
                               batch_size=8, max_tokens=200)
    one_by_one = predict_outputs(model, enc, device=torch.device("cpu"), pad_id=1,
                                 batch_size=1)
    np.testing.assert_allclose(bucketed, one_by_one, atol=1e-5)
    assert len(length_batches(enc.lengths, 8, max_tokens=200)) > len(enc) // 8
