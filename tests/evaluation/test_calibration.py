"""Temperature scaling: fitted on validation, lowers the calibration error of an over-confident
model without changing a single prediction, and travels with the exported model."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import torch

from nas_core.backbones.loading import encode
from nas_core.common.metric_names import IGNORE_INDEX
from nas_core.common.probabilities import scaled
from nas_core.common.tasks import Task
from nas_core.evaluation.calibration import (
    calibration_report,
    expected_calibration_error,
    fit_temperature,
)
from nas_core.modeling.architecture import Architecture
from nas_core.modeling.build import build_model
from nas_core.modeling.modules import TaskInfo
from nas_core.modeling.training import predict_outputs
from nas_core.publishing.export import export_model, load_model

CPU = torch.device("cpu")


def _over_confident(n: int, seed: int, k: int = 3, sharpen: float = 4.0):
    """Labels drawn from a known model's probabilities, and that model's probabilities with
    its logits multiplied by ``sharpen``: right as often, but far too sure."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.0, (n, k))
    truth = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(k, p=p) for p in truth])
    sharp = np.exp(logits * sharpen)
    return y, sharp / sharp.sum(1, keepdims=True)


def test_temperature_scaling_lowers_the_error_and_keeps_every_prediction():
    y_val, p_val = _over_confident(3000, 0)
    y_test, p_test = _over_confident(3000, 1)
    temperature = fit_temperature(y_val, p_val)
    assert 3.0 < temperature < 5.5  # the sharpening undone
    after = scaled(p_test, temperature)
    before_ece = expected_calibration_error(y_test, p_test)
    after_ece = expected_calibration_error(y_test, after)
    assert after_ece < 0.5 * before_ece and after_ece < 0.05, (before_ece, after_ece)
    assert (after.argmax(1) == p_test.argmax(1)).all()
    np.testing.assert_allclose(after.sum(1), 1.0)
    # a calibrated model is left alone
    calibrated = scaled(p_val, temperature)
    assert abs(fit_temperature(y_val, calibrated) - 1.0) < 0.05


def test_per_residue_outputs_calibrate_over_labelled_residues():
    y, p = _over_confident(2000, 2)
    targets, outputs = np.empty(20, dtype=object), np.empty(20, dtype=object)
    for i in range(20):
        t = y[i * 100:(i + 1) * 100].copy()
        t[:5] = IGNORE_INDEX  # unlabelled residues are left out
        targets[i], outputs[i] = t, p[i * 100:(i + 1) * 100]
    report = calibration_report(Task.RESIDUE_CLASSIFICATION, targets[:10], outputs[:10],
                                targets[10:], outputs[10:])
    assert report.temperature > 2
    assert report.ece_after is not None and report.ece_before is not None
    assert report.ece_after < report.ece_before
    assert sum(r.count for r in report.reliability_after) == 10 * 95


def test_the_exported_model_carries_its_temperature(tiny_backbone, tmp_path):
    """Bundled class and plain EsmForSequenceClassification (the temperature folded into the
    classifier) both give the engine's calibrated probabilities."""
    from transformers import EsmForSequenceClassification

    arch = Architecture(backbone=str(tiny_backbone), n_layers=2, pooling="cls", head_layers=1,
                        head_width=32, activation="tanh", dropout=0.0)
    model, tok = build_model(arch, TaskInfo("binary", ["no", "yes"]))
    seqs = ["MKVLAAGIW", "ACDEFGHIKLMNPQ", "GLFDIIKKIAESF"]
    raw = predict_outputs(model, encode(seqs, tok), device=CPU, pad_id=1)
    model.info = dataclasses.replace(model.info, temperature=2.5)
    ours = predict_outputs(model, encode(seqs, tok), device=CPU, pad_id=1)
    np.testing.assert_allclose(ours, scaled(raw, 2.5), atol=1e-5)
    export_model(model, tok, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["esm_nas"]["temperature"] == 2.5
    reloaded, _ = load_model(tmp_path / "m")
    np.testing.assert_allclose(predict_outputs(reloaded, encode(seqs, tok), device=CPU,
                                               pad_id=1), ours, atol=1e-5)
    plain = EsmForSequenceClassification.from_pretrained(tmp_path / "m").eval()
    with torch.no_grad():
        theirs = plain(**tok(seqs, return_tensors="pt", padding=True)).logits.softmax(-1)
    np.testing.assert_allclose(theirs.numpy(), ours, atol=1e-5)
