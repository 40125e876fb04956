"""Structured pruning and distillation on the tiny random-weight ESM-2-shaped backbone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nas_core.backbones.loading import encode
from nas_core.common.tasks import Task
from nas_core.modeling.architecture import Architecture
from nas_core.modeling.batches import Encoded
from nas_core.modeling.build import build_model, count_parameters, merged_copy
from nas_core.modeling.compaction import DistilRun, TeacherCache, pruned_student
from nas_core.modeling.compaction_options import DistillConfig
from nas_core.modeling.distillation import divergence
from nas_core.modeling.modules import TaskInfo
from nas_core.modeling.pruning import (
    Compaction,
    Gates,
    apply,
    count_after,
    for_shares,
    for_target,
    gated,
    importance,
    keep_indices,
)
from nas_core.modeling.training import TrainSettings, predict_outputs, train
from nas_core.publishing.export import export_model, load_model
from tests.helpers import run_fresh
from tests.modeling.test_training import SEQS

CPU = torch.device("cpu")
Y = np.array([int("K" in s or "R" in s) for s in SEQS])


def _model(tiny_backbone, adaptation="full", **kw):
    arch = Architecture(backbone=str(tiny_backbone), n_layers=3, adaptation=adaptation,
                        pooling="mean", head_layers=0, dropout=0.0, lr=3e-3, max_epochs=3,
                        batch_size=8, lora_rank=4, lora_alpha=8, **kw)
    model, tok = build_model(arch, TaskInfo("binary", ["no", "yes"]))
    return model, Encoded(encode(SEQS, tok), Y)


def _random_scores(model, seed=0) -> Gates:
    g = torch.Generator().manual_seed(seed)
    layers = model.esm.encoder.layer
    return Gates([torch.rand(4, generator=g) for _ in layers],
                 [torch.rand(layer.intermediate.dense.out_features, generator=g)
                  for layer in layers])


def test_pruned_model_equals_the_masked_model(tiny_backbone):
    model, data = _model(tiny_backbone)
    model.eval()
    scores = _random_scores(model)
    compaction = Compaction((2, 3, 1), (64, 100, 17), 4, 128)
    heads = keep_indices(scores.heads, compaction.heads)
    neurons = keep_indices(scores.neurons, compaction.ffn)
    masks = Gates([torch.zeros(4) for _ in heads], [torch.zeros(128) for _ in neurons])
    for mask, keep in zip(masks.heads + masks.neurons, heads + neurons):
        mask[keep] = 1.0
    with gated(model, masks):
        masked = predict_outputs(model, data, device=CPU, pad_id=1)
    pruned = merged_copy(model)
    apply(pruned, compaction, scores)
    np.testing.assert_allclose(predict_outputs(pruned, data, device=CPU, pad_id=1), masked,
                               atol=1e-5)
    layer = pruned.esm.encoder.layer[0]
    assert layer.attention.self.query.weight.shape == (2 * 8, 32)  # 2 heads of 8
    assert layer.intermediate.dense.weight.shape == (64, 32)
    assert layer.output.dense.weight.shape == (32, 64)


def test_parameter_counts_are_exact(tiny_backbone):
    model, _ = _model(tiny_backbone)
    compaction = Compaction((2, 3, 1), (64, 100, 17), 4, 128)
    expected = count_after(model, compaction)
    apply(model, compaction, _random_scores(model))
    assert count_parameters(model) == expected == sum(p.numel() for p in model.parameters())
    assert count_after(model, compaction) == expected  # counting a pruned model again


def test_target_compaction_meets_the_budget(tiny_backbone):
    model, _ = _model(tiny_backbone)
    full = count_parameters(model)
    for share in (0.75, 0.5, 0.25):
        compaction = for_target(model, int(full * share))
        after = count_after(model, compaction)
        assert after <= full * share
        assert after >= full * share - 3 * (8 * 65 + 8 * 4 * 32)  # within one step of width
    with pytest.raises(ValueError, match="below the smallest compaction"):
        for_target(model, int(full * 0.05))
    assert for_shares(model, 0.5, 0.25).heads == (2, 2, 2)
    assert for_shares(model, 0.5, 0.25).ffn == (32, 32, 32)


@pytest.mark.parametrize("method", ["taylor", "activation"])
def test_a_head_zeroed_by_construction_ranks_last(tiny_backbone, method):
    model, data = _model(tiny_backbone)
    layer = model.esm.encoder.layer[1]
    with torch.no_grad():  # head 2 of layer 1 writes nothing: its value projection is zero
        layer.attention.self.value.weight[16:24] = 0
        layer.attention.self.value.bias[16:24] = 0
        model.esm.encoder.layer[2].intermediate.dense.weight[5] = 0  # neuron 5: gelu(0) = 0
        model.esm.encoder.layer[2].intermediate.dense.bias[5] = 0
    scores = importance(model, data, device=CPU, pad_id=1, method=method)
    assert int(torch.argmin(scores.heads[1])) == 2
    assert float(scores.heads[1][2]) == pytest.approx(0.0, abs=1e-7)
    assert int(torch.argmin(scores.neurons[2])) == 5
    assert all(float(s.norm()) == pytest.approx(1.0) for s in scores.heads)
    assert all(p.requires_grad for p in model.parameters())  # flags restored


def test_distillation_lowers_the_student_teacher_divergence(tiny_backbone):
    torch.manual_seed(0)  # the LoRA initialisation
    teacher, data = _model(tiny_backbone, adaptation="lora")
    train(teacher, data, data, Y, TrainSettings("roc_auc", CPU), pad_id=1)
    cache = TeacherCache.of(teacher, data, device=CPU, pad_id=1)
    compaction = for_shares(merged_copy(teacher), 0.5, 0.25)
    run = DistilRun(data, data, Y, 1, TrainSettings("roc_auc", CPU, patience=10), DistillConfig(
        alpha=1.0, embedding_weight=0.0, epochs=6))
    untrained = merged_copy(teacher)
    apply(untrained, compaction, importance(untrained, data, device=CPU, pad_id=1))
    before = divergence(Task.BINARY, untrained, data, cache.logits, device=CPU, pad_id=1)
    student = pruned_student(teacher, compaction, run, cache=cache)
    after = divergence(Task.BINARY, student.model, data, cache.logits, device=CPU, pad_id=1)
    assert after < before * 0.7, (before, after)
    assert student.n_parameters == count_parameters(student.model) < count_parameters(teacher)
    assert student.model.compaction == compaction
    assert student.model.arch.heads_kept == 0.5 and student.model.arch.adaptation == "lora"
    assert [len(h) for h in student.kept["heads"]] == [2, 2, 2]
    # the teacher is untouched (pruning works on a merged copy)
    assert teacher.esm.base_model.model.encoder.layer[0].attention.self.query.base_layer \
        .weight.shape == (32, 32)


FRESH = """
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1], trust_remote_code=True)
model.eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
batch = tokenizer(json.loads(sys.argv[2]), return_tensors="pt", padding=True)
with torch.no_grad():
    out = model(**batch).logits.softmax(-1).tolist()
"""


def fresh_process_probs(directory, sequences) -> np.ndarray:
    """Probabilities from the exported folder in a new interpreter: torch + transformers."""
    return np.array(run_fresh(FRESH, directory, sequences))


def test_exported_compacted_model_reloads_everywhere_with_identical_predictions(
        tiny_backbone, tmp_path):
    model, data = _model(tiny_backbone, adaptation="lora")
    compaction = Compaction((3, 1, 2), (40, 96, 8), 4, 128)
    student = merged_copy(model)
    apply(student, compaction, _random_scores(student))
    student.compaction = compaction
    student.eval()
    ours = predict_outputs(student, data, device=CPU, pad_id=1)
    tok = build_model(student.arch, student.info)[1]
    export_model(student, tok, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["esm_nas"]["compaction"]["heads"] == [3, 1, 2]
    assert (tmp_path / "m" / "esm_nas_shapes.py").is_file()
    reloaded, _ = load_model(tmp_path / "m")
    np.testing.assert_allclose(predict_outputs(reloaded, data, device=CPU, pad_id=1), ours,
                               atol=1e-5)
    assert count_parameters(reloaded) == count_parameters(student)
    np.testing.assert_allclose(fresh_process_probs(tmp_path / "m", SEQS[:8]), ours[:8],
                               atol=1e-5)


def test_uniform_width_compaction_loads_as_plain_esm(tiny_backbone, tmp_path):
    """All heads kept and one feed-forward width: plain EsmForSequenceClassification, no
    remote code (the width is just intermediate_size)."""
    from transformers import EsmForSequenceClassification

    arch = Architecture(backbone=str(tiny_backbone), n_layers=2, adaptation="full",
                        pooling="cls", head_layers=1, head_width=32, activation="tanh",
                        dropout=0.0)
    model, tok = build_model(arch, TaskInfo("binary", ["no", "yes"]))
    compaction = for_shares(model, 1.0, 0.5)
    apply(model, compaction, _random_scores(model))
    model.compaction = compaction
    model.eval()
    export_model(model, tok, tmp_path / "m")
    plain = EsmForSequenceClassification.from_pretrained(tmp_path / "m").eval()
    assert plain.config.intermediate_size == 64
    batch = tok(SEQS[:6], return_tensors="pt", padding=True)
    with torch.no_grad():
        theirs = plain(**batch).logits.softmax(-1).numpy()
    ours = predict_outputs(model, encode(SEQS[:6], tok), device=CPU, pad_id=1)
    np.testing.assert_allclose(theirs, ours, atol=1e-5)
