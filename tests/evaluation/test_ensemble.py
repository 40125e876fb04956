"""The ensemble of the best architectures: which trials it takes, that its probabilities are
its members' calibrated mean, and that the exported directory reloads with transformers alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.distributions import FloatDistribution

from nas_core.common.metrics import compute_metrics
from nas_core.common.probabilities import scaled, scaled_outputs
from nas_core.common.report import Skipped
from nas_core.evaluation.calibration import expected_calibration_error, fit_temperature
from nas_core.evaluation.ensemble import choose_members
from nas_core.evaluation.finalise import finalise
from nas_core.modeling.batches import encode_split
from nas_core.modeling.build import load_trial_checkpoint
from nas_core.modeling.training import predict_outputs
from nas_core.publishing.export import load_models
from nas_core.publishing.predict import Predictor, combine
from nas_core.runtime.launch import run_search
from nas_core.search.config import SearchConfig
from tests.helpers import run_fresh, split_example, tiny_space


def arch(**kw) -> dict:
    return {"backbone": "esm2_t6_8M", "n_layers": 6, **kw}


def constructed_study(rows: list[tuple[float, dict]]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for value, architecture in rows:
        study.add_trial(optuna.trial.create_trial(
            params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)}, value=value,
            user_attrs={"architecture": architecture}))
    return study


def test_members_prefer_other_architectures_over_near_copies():
    study = constructed_study([
        (0.95, arch(lr=1e-3)), (0.94, arch(lr=2e-3)),  # the same structure twice
        (0.93, arch(adaptation="lora")), (0.90, arch(pooling="cls")), (0.80, arch(n_layers=3))])
    choice = choose_members(study, 3)
    assert [t.number for t in choice.members] == [0, 2, 3]
    # near-copies fill places nothing else can; the members stay in validation order
    assert [t.number for t in choose_members(study, 5).members] == [0, 1, 2, 3, 4]
    skipping = choose_members(study, 3, usable=lambda t: "elsewhere" if t.number == 2 else None)
    assert [t.number for t in skipping.members] == [0, 3, 4]
    assert skipping.skipped == [Skipped(2, "elsewhere")]


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory, tiny_backbone):
    root = tmp_path_factory.mktemp("ensemble")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ESM_NAS_HOME", str(root / "workspace"))
        peptides = split_example()
        config = SearchConfig("ens", tiny_space(tiny_backbone), n_trials=4, seed=0,
                              pruner="none", ensemble_size=3)
        report = run_search(config, peptides, root / "out")
        study = optuna.load_study(study_name="ens",
                                  storage=f"sqlite:///{root}/workspace/studies.db")
        yield root / "out", report, study, peptides


def test_the_ensemble_is_the_mean_of_its_calibrated_members(ensemble_run):
    out, report, study, peptides = ensemble_run
    ens = report.ensemble
    assert ens is not None and ens.temperature is not None and ens.test is not None
    assert len(ens.members) == 3 and ens.members[0].trial == report.best.trial
    assert {"val", "test", "test_ci", "vs_best", "vs_reference", "ece"} <= set(ens.to_dict())
    assert ens.vs_best is not None and ens.vs_best.verdict in ("better", "worse",
                                                               "within noise")
    test = peptides.part("test")
    sequences = list(test["sequence"])
    # each member straight from its trial's checkpoint, with the temperature it was given
    trials = {t.number: t for t in study.trials}
    members = []
    for row in ens.members:
        model, tokenizer = load_trial_checkpoint(
            Path(trials[row.trial].user_attrs["checkpoint"]))
        data = encode_split(sequences, np.zeros(len(sequences)), tokenizer)
        raw = predict_outputs(model, data.ids, device=torch.device("cpu"),
                              pad_id=tokenizer.pad_token_id)
        members.append(scaled_outputs(peptides.task, raw, row.temperature))
    averaged = np.mean(members, axis=0)
    # the averaged probabilities get the ensemble's own temperature, fitted on validation
    assert 0.05 <= ens.temperature <= 20.0 and ens.temperature != 1.0
    mean = scaled(averaged, ens.temperature)
    assert expected_calibration_error(peptides.label_index(test["label"]), averaged
                                      ) == pytest.approx(ens.ece_averaged)
    predictor = Predictor(out / "ensemble_model")
    assert predictor.temperature == ens.temperature
    assert predictor.ensemble and len(predictor.models) == 3
    frame = predictor.predict_sequences(sequences)
    np.testing.assert_allclose(frame[["p_AMP", "p_TM"]].to_numpy(), mean, atol=1e-5)
    spread = np.std(members, axis=0)[np.arange(len(mean)), mean.argmax(1)]
    np.testing.assert_allclose(frame["uncertainty"].to_numpy(), spread, atol=1e-5)
    again = compute_metrics(peptides.task, peptides.label_index(test["label"]), mean)
    assert again["roc_auc"] == pytest.approx(ens.test["roc_auc"], abs=1e-6)
    card = (out / "ensemble_model" / "README.md").read_text()
    assert "ensemble of 3" in card and "spread" in card
    assert f"own temperature, T = {ens.temperature:.2f}" in card


def test_the_ensembles_own_temperature_undoes_the_averages_under_confidence():
    """Members that are each calibrated but disagree (independent errors) average to
    probabilities less sure than they should be; the temperature fitted to the average on the
    validation split brings the test calibration error down and never changes a prediction."""
    rng = np.random.default_rng(0)

    def split(n):
        truth = rng.normal(0.0, 2.5, n)  # the true log-odds
        y = (rng.random(n) < 1 / (1 + np.exp(-truth))).astype(int)
        members = []
        for _ in range(5):  # each member: the truth plus its own error, then calibrated
            logit = truth + rng.normal(0.0, 2.0, n)
            members.append(np.stack([-logit / 2, logit / 2], axis=1))
        return y, members

    def probs(logits, temperature):
        z = logits / temperature
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    (y_val, val), (y_test, test) = split(4000), split(4000)
    calibrated_val, calibrated_test = [], []
    for v, t in zip(val, test):
        temperature = fit_temperature(y_val, probs(v, 1.0))
        calibrated_val.append(probs(v, temperature))
        calibrated_test.append(probs(t, temperature))
    averaged_val, averaged_test = combine(calibrated_val)[0], combine(calibrated_test)[0]
    temperature = fit_temperature(y_val, averaged_val)
    assert temperature < 0.9  # sharpened: the average was under-confident
    after = scaled(averaged_test, temperature)
    before_ece = expected_calibration_error(y_test, averaged_test)
    after_ece = expected_calibration_error(y_test, after)
    assert after_ece < 0.6 * before_ece
    assert (after.argmax(1) == averaged_test.argmax(1)).all()


FRESH = """
import json, sys
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
directory, sequences = sys.argv[1], json.loads(sys.argv[2])
tokenizer = AutoTokenizer.from_pretrained(directory)
model = AutoModelForSequenceClassification.from_pretrained(directory, trust_remote_code=True)
batch = tokenizer(sequences, return_tensors="pt", padding=True)
labels = torch.tensor([i % 2 for i in range(len(sequences))])
with torch.no_grad():
    output = model.eval()(**batch, labels=labels)
out = {"p": output.logits.softmax(-1).tolist(), "spread": output.spread.tolist(),
       "members": len(model.members), "loss": output.loss.item()}
"""


def test_the_exported_ensemble_reloads_with_transformers_alone(ensemble_run):
    out, _, _, peptides = ensemble_run
    sequences = list(peptides.part("test")["sequence"])[:8]
    fresh = run_fresh(FRESH, out / "ensemble_model", sequences)
    mean, spread = Predictor(out / "ensemble_model").outputs(sequences)
    assert fresh["members"] == 3
    np.testing.assert_allclose(np.array(fresh["p"]), mean, atol=1e-5)
    np.testing.assert_allclose(np.array(fresh["spread"]), spread, atol=1e-5)
    labels = np.arange(len(sequences)) % 2  # the loss is the calibrated mean's cross-entropy
    assert fresh["loss"] == pytest.approx(-np.log(mean[np.arange(len(mean)), labels]).mean(),
                                          rel=1e-4)
    config = json.loads((out / "ensemble_model" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSequenceClassification"].endswith(
        "EsmNasEnsembleForSequenceClassification")
    models, _ = load_models(out / "best_model")
    assert len(models) == 1  # the best model stays a model of its own


def test_a_chosen_trial_or_size_one_has_no_ensemble(ensemble_run, tmp_path):
    out, report, study, peptides = ensemble_run
    alone = finalise(study, peptides, tmp_path / "alone", ensemble_size=1)
    assert alone.ensemble is None and "ensemble" not in alone.to_dict()
    assert not (tmp_path / "alone" / "ensemble_model").exists()
