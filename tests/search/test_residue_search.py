"""Per-residue tasks end to end on the shipped FLIP secondary-structure chains: search, the
held-out report with intervals over proteins beside the window reference, export that reloads
with transformers alone, and prediction one row per residue."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from nas_core.backbones.loading import encode
from nas_core.common.metric_names import IGNORE_INDEX
from nas_core.common.metrics import bootstrap_ci, compute_metrics
from nas_core.common.tasks import Task
from nas_core.data.dataset import Dataset
from nas_core.modeling.architecture import Architecture
from nas_core.modeling.build import build_model
from nas_core.modeling.losses import task_loss
from nas_core.modeling.modules import TaskInfo
from nas_core.modeling.training import predict_outputs
from nas_core.publishing.export import load_model
from nas_core.publishing.predict import Predictor
from nas_core.runtime.launch import run_search
from nas_core.search.config import SearchConfig
from tests.helpers import residue_example, run_fresh, tiny_space

CPU = torch.device("cpu")
FRESH = """
import json, sys, torch
from transformers import AutoModelForTokenClassification, AutoTokenizer
model = AutoModelForTokenClassification.from_pretrained(sys.argv[1], trust_remote_code=True)
model.eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
out = []
for seq in json.loads(sys.argv[2]):
    with torch.no_grad():
        logits = model(**tokenizer([seq], return_tensors="pt")).logits[0, 1:-1]
    out.append((logits.squeeze(-1) if model.config.problem_type == "regression"
                else logits.softmax(-1)).tolist())
"""


def fresh_process(directory, sequences) -> list[np.ndarray]:
    """Per-residue outputs from the exported folder in a new interpreter: torch + transformers
    only."""
    return [np.array(x) for x in run_fresh(FRESH, directory, sequences)]


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tiny_backbone):
    root = tmp_path_factory.mktemp("ws")
    os.environ["ESM_NAS_HOME"] = str(root)
    dataset = residue_example()
    space = tiny_space(tiny_backbone, adaptations=("frozen", "lora"), residue_heads=("conv",))
    out = root / "run"
    report = run_search(SearchConfig("ss", space, n_trials=2, seed=1), dataset, out)
    return dataset, report, out


@pytest.mark.slow
def test_a_per_residue_search_reports_held_out_metrics_over_proteins(searched):
    dataset, report, out = searched
    assert report.task == "residue_classification" and report.metric == "mcc"
    best = report.best
    assert {"accuracy", "mcc", "f1_macro", "accuracy_per_protein"} <= set(best.test)
    assert "roc_auc" not in best.test  # three classes: ROC-AUC is for binary residue tasks
    low, high = best.test_ci["accuracy"]
    assert low <= best.test["accuracy"] <= high
    assert "convolutional head over 7 neighbouring residues" in best.description
    assert "pooling" not in best.description
    assert report.baseline.model == "logistic regression on a one-hot window of 15 " \
        "residues"
    assert report.baseline.test_ci["accuracy"] is not None
    assert report.vs_reference.verdict in ("better", "worse", "within noise")
    n_test = int((dataset.frame["split"] == "test").sum())
    assert report.leakage.n == n_test  # per protein
    table = pd.read_csv(out / "test_predictions.csv")
    test = dataset.part("test")
    assert len(table) == test["sequence"].str.len().sum()  # one row per residue
    assert list(table.columns[:5]) == ["id", "position", "residue", "label", "prediction"]
    assert {"p_C", "p_E", "p_H", "nearest_train_identity"} <= set(table.columns)
    first = test.iloc[0]
    rows = table[table["id"] == first["id"]]
    assert "".join(rows["residue"]) == first["sequence"]
    assert list(rows["position"]) == list(range(1, len(first["sequence"]) + 1))
    assert rows["label"].isna().sum() == first["label"].count("-")
    # the exported model predicts the same per residue in a fresh interpreter
    model, tokenizer = load_model(out / "best_model")
    config = json.loads((out / "best_model" / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoModelForTokenClassification": "modeling_esm_nas.EsmNasForTokenClassification"}
    sequences = list(test["sequence"][:3])
    ours = predict_outputs(model, encode(sequences, tokenizer), device=CPU, pad_id=1)
    for theirs, mine in zip(fresh_process(out / "best_model", sequences), ours):
        np.testing.assert_allclose(theirs, mine, atol=1e-5)
    card = (out / "best_model" / "README.md").read_text()
    assert "per-residue" in card and "AutoModelForTokenClassification" in card
    # probabilities calibrated on the validation residues; the export divides by the same
    calibration = report.calibration
    assert config["esm_nas"]["temperature"] == calibration.temperature > 0
    assert calibration.ece_after <= calibration.ece_before + 0.02
    assert "## Calibrated probabilities" in card
    # the per-residue ensemble: the members' mean per residue, in a fresh interpreter too
    assert len(report.ensemble.members) == 2
    mean, spread = Predictor(out / "ensemble_model").outputs(sequences)
    for theirs, mine, sd in zip(fresh_process(out / "ensemble_model", sequences), mean,
                                spread):
        np.testing.assert_allclose(theirs, mine, atol=1e-5)
        assert mine.shape == sd.shape and (sd >= 0).all()
    rows = Predictor(out / "ensemble_model").predict_sequences(sequences, ids=["a", "b", "c"])
    assert len(rows) == sum(map(len, sequences)) and (rows["uncertainty"] >= 0).all()


@pytest.mark.slow
def test_compress_refuses_a_per_residue_model_with_the_reason(searched, tmp_path):
    from nas_core.compression.compress import CompressConfig, CompressError, compress

    _, _, out = searched
    with pytest.raises(CompressError, match="per-residue model.*parameter limit"):
        compress(out, tmp_path / "c", CompressConfig(targets=(0.5,)))


@pytest.mark.slow
def test_predict_cli_writes_one_row_per_residue_with_sets_and_novelty(searched, tmp_path):
    dataset, _, out = searched
    test = dataset.part("test").head(4)
    test[["id", "sequence"]].to_csv(tmp_path / "new.csv", index=False)
    done = subprocess.run([sys.executable, "-m", "nas_core", "predict", str(out / "best_model"),
                           str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_csv(tmp_path / "p.csv")
    assert len(table) == test["sequence"].str.len().sum()
    assert {"id", "position", "residue", "prediction", "p_H", "set_90%",
            "nearest_train_identity", "unlike_training"} <= set(table.columns)
    per_protein = table.groupby("id")["nearest_train_identity"].nunique()
    assert (per_protein == 1).all()  # the novelty flag is the protein's


def test_masked_loss_ignores_unlabelled_residues_and_padding():
    logits = torch.randn(2, 6, 3)
    targets = torch.tensor([[IGNORE_INDEX, 0, 2, 1, IGNORE_INDEX, IGNORE_INDEX],
                            [IGNORE_INDEX, 1, IGNORE_INDEX, 0, 2, IGNORE_INDEX]])
    loss = task_loss(Task.RESIDUE_CLASSIFICATION, logits, targets)
    changed = logits.clone()
    changed[targets == IGNORE_INDEX] = 100.0  # anything at ignored positions
    torch.testing.assert_close(task_loss(Task.RESIDUE_CLASSIFICATION, changed, targets), loss)
    keep = targets != IGNORE_INDEX
    expected = torch.nn.functional.cross_entropy(logits[keep], targets[keep])
    torch.testing.assert_close(loss, expected)
    weights = torch.tensor([1.0, 1.0, 5.0])
    assert task_loss(Task.RESIDUE_CLASSIFICATION, logits, targets, weights) != loss
    values = torch.tensor([[np.nan, 0.5, np.nan], [np.nan, 1.0, 2.0]])
    predicted = torch.zeros(2, 3, 1)
    torch.testing.assert_close(task_loss(Task.RESIDUE_REGRESSION, predicted, values),
                               torch.tensor((0.25 + 1.0 + 4.0) / 3))


@pytest.mark.parametrize("head", ["dense", "conv"])
def test_padding_and_batch_neighbours_do_not_change_a_residue(tiny_backbone, head):
    arch = Architecture(backbone=str(tiny_backbone), n_layers=2, residue_head=head,
                        head_layers=0, head_width=16, dropout=0.0)
    model, tokenizer = build_model(arch, TaskInfo("residue_classification", ["C", "E", "H"]))
    short, long = "MKVLAAG", "ACDEFGHIKLMNPQRSTVWYACDEF"
    alone = predict_outputs(model, encode([short], tokenizer), device=CPU, pad_id=1)[0]
    batched = predict_outputs(model, encode([short, long], tokenizer), device=CPU, pad_id=1)
    assert alone.shape == (len(short), 3) and batched[1].shape == (len(long), 3)
    np.testing.assert_allclose(batched[0], alone, atol=1e-5)


def test_bootstrap_intervals_resample_proteins_not_residues():
    """One long protein predicted right and nine short ones wrong: resampling residues would
    give a narrow interval around 0.92; resampling proteins shows how much hangs on one."""
    y, out = np.empty(10, dtype=object), np.empty(10, dtype=object)
    y[0], out[0] = np.zeros(1000, dtype=int), np.tile([0.9, 0.1], (1000, 1))
    for i in range(1, 10):
        y[i], out[i] = np.zeros(10, dtype=int), np.tile([0.1, 0.9], (10, 1))
    pooled = compute_metrics(Task.RESIDUE_CLASSIFICATION, y, out)
    assert pooled["accuracy"] == pytest.approx(1000 / 1090)
    assert pooled["accuracy_per_protein"] == pytest.approx(0.1)
    intervals = bootstrap_ci(Task.RESIDUE_CLASSIFICATION, y, out, n=300)
    low, high = intervals["accuracy"]
    assert low < 0.5 < high
    # the proteins' own accuracies are computed once and resampled: the same interval as
    # recomputing every resample
    from nas_core.common.metrics import percentile_interval, resamples

    naive = [compute_metrics(Task.RESIDUE_CLASSIFICATION, y[i], out[i])["accuracy_per_protein"]
             for i in resamples(len(y), 300, 0)]
    assert intervals["accuracy_per_protein"] == percentile_interval(naive, 300)


@pytest.mark.slow
def test_a_per_residue_regression_search_exports_a_plain_token_classifier(tiny_backbone,
                                                                           tmp_path,
                                                                           monkeypatch):
    """Per-residue values (a hydrophobicity scale, smoothed: learnable from the sequence) with
    a linear head: plain EsmForTokenClassification loads it, values in the label's units."""
    from transformers import EsmForTokenClassification

    monkeypatch.setenv("ESM_NAS_HOME", str(tmp_path / "ws"))
    scale = dict(zip("ACDEFGHIKLMNPQRSTVWY", np.linspace(-2, 2, 20)))
    frame = residue_example().frame.head(80).copy()
    frame["label"] = [" ".join(f"{scale.get(c, 0.0):.3f}" for c in seq)
                      for seq in frame["sequence"]]
    dataset = Dataset(frame, "residue_regression", None, "hydro")
    space = tiny_space(tiny_backbone, adaptations=("frozen",), residue_heads=("dense",),
                       head_layers_range=(0, 0), epochs=3)
    report = run_search(SearchConfig("hydro", space, n_trials=1), dataset, tmp_path / "run")
    assert report.task == "residue_regression"
    assert {"spearman", "spearman_per_protein", "mae"} <= set(report.best.test)
    assert report.best.test_ci["spearman"] is not None
    model, tokenizer = load_model(tmp_path / "run" / "best_model")
    plain = EsmForTokenClassification.from_pretrained(tmp_path / "run" / "best_model").eval()
    seqs = list(dataset.part("test")["sequence"][:2])
    ours = predict_outputs(model, encode(seqs, tokenizer), device=CPU, pad_id=1)
    for seq, mine in zip(seqs, ours):
        with torch.no_grad():
            theirs = plain(**tokenizer([seq], return_tensors="pt")).logits[0, 1:-1, 0]
        np.testing.assert_allclose(theirs.numpy(), mine, atol=1e-4)
    table = pd.read_csv(tmp_path / "run" / "test_predictions.csv")
    assert len(table) == dataset.part("test")["sequence"].str.len().sum()


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["darts", "nsga2"])
def test_darts_and_the_pareto_front_work_per_residue(tiny_backbone, tmp_path, monkeypatch,
                                                     sampler):
    """DARTS mixes every layer's residue representations under a dense token head; NSGA-II
    trades residue accuracy against size."""
    import optuna

    from nas_core.search.study import open_study, optimize

    monkeypatch.setenv("ESM_NAS_HOME", str(tmp_path / "ws"))
    dataset = residue_example(25, 8, 10)  # DARTS trains on every labelled residue
    space = tiny_space(tiny_backbone, adaptations=("frozen",), residue_heads=("dense", "conv"),
                       head_layers_range=(0, 1), head_widths=(64,), activations=("gelu",))
    objective = "metric+size" if sampler == "nsga2" else "metric"
    config = SearchConfig(f"ss-{sampler}", space, n_trials=3, sampler=sampler,
                          objective=objective, pruner="none")
    study = open_study(config, dataset)
    optimize(study, config, dataset)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 3, [t.user_attrs.get("fail_reason") for t in study.trials]
    assert all("accuracy_per_protein" in t.user_attrs["val_metrics"] for t in done)
    if sampler == "darts":
        darts = study.user_attrs["darts"]
        assert {row["choice"] for row in darts["history"] if row["group"] == "pooling"} == {
            "per residue"}
        assert all(t.user_attrs["architecture"]["residue_head"] == "dense" for t in done)
    else:
        assert len(study.best_trials) >= 1 and len(done[0].values) == 2


@pytest.mark.slow
def test_cli_search_on_the_flip_files_with_two_workers_and_the_rl_controller(tiny_backbone,
                                                                             tmp_path,
                                                                             monkeypatch,
                                                                             capsys):
    """Headless, as a lab would run it: the three FLIP files, the REINFORCE controller, two
    worker processes on the workspace's SQLite store; validate says what it read."""
    from nas_core.cli import main
    from tests.helpers import ROOT, flip_subset

    monkeypatch.setenv("ESM_NAS_HOME", str(tmp_path / "ws"))
    seqs, labels, mask = flip_subset(tmp_path / "flip", (80, 20, 30))
    flip = [str(seqs), "--labels", str(labels), "--mask", str(mask)]
    assert main(["validate", *flip]) == 0
    printed = capsys.readouterr().out
    assert "130 sequences, task: residue_classification" in printed
    assert " labelled residues; proteins stay whole" in printed
    assert main(["validate", str(mask), "--mask", str(mask)]) == 2
    assert "--mask goes with --labels" in capsys.readouterr().out
    env = {**os.environ, "ESM_NAS_HOME": str(tmp_path / "ws"), "OMP_NUM_THREADS": "1"}
    env.pop("ESM_NAS_STORAGE", None)
    out = subprocess.run(
        [sys.executable, "-m", "nas_core", "search", *flip, "--backbone", str(tiny_backbone),
         "--adaptation", "frozen", "--max-epochs", "2", "--trials", "4", "--sampler", "rl",
         "--study", "ss-cli", "--device", "cpu", "--workers", "2", "--out",
         str(tmp_path / "out")], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "2 workers: cpu, cpu" in out.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["task"] == "residue_classification" and report["n_trials"] == 4
    assert report["dataset"]["summary"]["splits"] == {"train": 80, "valid": 20, "test": 30}
    assert report["best"]["test"]["accuracy"] is not None


@pytest.mark.slow
def test_a_chart_that_cannot_be_drawn_leaves_the_card_without_its_image(searched, tmp_path,
                                                                        monkeypatch):
    """No PNG engine (or vl-convert failing on this machine): the card is written without the
    images, and finalising never loses the model over a chart."""
    import shutil

    import altair as alt

    from nas_core.publishing.card import CURVES_IMAGE, IDENTITY_IMAGE, write_model_card

    _, report, out = searched

    def cannot(self, *args, **kwargs):
        raise ValueError("Saving charts in 'png' format requires the vl-convert-python "
                         "package")

    monkeypatch.setattr(alt.Chart, "save", cannot)
    monkeypatch.setattr(alt.LayerChart, "save", cannot)
    folder = tmp_path / "m"
    shutil.copytree(out / "best_model", folder)
    for image in (CURVES_IMAGE, IDENTITY_IMAGE):
        (folder / image).unlink(missing_ok=True)
    card = write_model_card(folder, report).read_text()
    assert CURVES_IMAGE not in card and IDENTITY_IMAGE not in card
    assert "How new are the test proteins?" in card  # the table stays
    assert not (folder / CURVES_IMAGE).exists()


@pytest.mark.slow
def test_a_per_residue_model_publishes_to_the_hub_and_predicts_from_it(searched, monkeypatch):
    """One click (here the engine call behind it) to the loopback Hub, then the Hub copy
    predicts one row per residue like the local one."""
    import yaml

    from nas_core.publishing.hub import PublishConfig, publish
    from nas_core.publishing.predict import Predictor
    from tests.fakehub import FakeHub

    dataset, _, out = searched
    with FakeHub() as hub:
        publish(out / "best_model", PublishConfig("ss-model"), token=hub.token,
                endpoint=hub.url)
        repo = hub.repos["alice/ss-model"]
        card = repo.files["README.md"].decode()
        meta = yaml.safe_load(card.split("---")[1])
        assert meta["pipeline_tag"] == "token-classification" and "per-residue" in meta["tags"]
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", hub.token)  # a private repository
        remote = Predictor("alice/ss-model", device="cpu")
    local = Predictor(out / "best_model", device="cpu")
    seqs = list(dataset.part("test")["sequence"][:2])
    theirs = remote.predict_sequences(seqs)
    ours = local.predict_sequences(seqs)
    assert len(theirs) == sum(map(len, seqs))
    np.testing.assert_allclose(theirs["p_H"], ours["p_H"], atol=1e-6)
