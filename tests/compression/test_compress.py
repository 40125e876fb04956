"""The Compress step on a real (tiny-backbone) search of the shipped peptide data."""

from __future__ import annotations

import json
import time

import numpy as np
import optuna
import pytest

import nas_core.modeling.compaction as compaction_mod
from nas_core.cli import main
from nas_core.common.metrics import classification_metrics
from nas_core.common.report import load_report
from nas_core.compression.compress import compress
from nas_core.compression.config import CompressConfig
from nas_core.data.store import DatasetStore
from nas_core.modeling.build import count_parameters
from nas_core.modeling.compaction_options import DistillConfig
from nas_core.publishing.predict import Predictor
from nas_core.runtime.launch import run_search
from nas_core.search.config import SearchConfig
from tests.helpers import out_of_memory_once, split_example, store_example, tiny_space


def _search(root, tiny_backbone, out, adaptation: str):
    stored = store_example(root=root)
    dataset = DatasetStore(root).load(stored.id)
    space = tiny_space(tiny_backbone, epochs=2, adaptations=(adaptation,), poolings=("mean",),
                       layers_range=(3, 3), lr_range=(3e-3, 3e-3))
    run_search(SearchConfig(f"to-compress-{adaptation}", space, n_trials=1, seed=0), dataset,
               out, root=root, dataset_path=stored.path)
    return out


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tiny_backbone):
    root = tmp_path_factory.mktemp("ws")
    mp = pytest.MonkeyPatch()
    mp.setenv("ESM_NAS_HOME", str(root))
    out = _search(root, tiny_backbone, root / "run", "full")
    yield root, out
    mp.undo()


def test_compress_is_estimated_from_the_models_own_training_time(searched, tmp_path,
                                                                 monkeypatch):
    """Issue 31, item 5: Compress (a minute or more) said nothing of how long; its estimate
    comes from the chosen model's measured epochs, before the job starts and on Monitor
    until the job's own epochs are timed."""
    from nas_core.compression.config import estimated_seconds
    from nas_core.runtime.jobtable import Job, JobState
    from nas_core.views.monitor import job_progress

    root, run_dir = searched
    report = load_report(run_dir)
    epoch = sum(r["seconds"] for r in report.best.history) / len(report.best.history)
    small = estimated_seconds(report, CompressConfig(targets=(0.5,), depth_baseline=False))
    both = estimated_seconds(report, CompressConfig(targets=(0.5,)))
    longer = estimated_seconds(report, CompressConfig(
        targets=(0.5,), depth_baseline=False,
        distill=DistillConfig(epochs=10 * len(report.best.history))))
    assert small == pytest.approx(epoch * len(report.best.history) * 0.8 + 5.0)
    assert both == pytest.approx(2 * small) and longer > small
    # the job carries it; Monitor counts it down until the job's first epoch is timed
    job = Job(id="c1", study_name="run-compress-c1", dataset_id="d", owner="o",
              state=JobState.RUNNING, config={"kind": "compress", "n_trials": 1,
                                              "estimate_s": small},
              storage="", out_dir="", created=time.time(), started=time.time() - 2.0)
    assert job_progress(job, None).eta_seconds == pytest.approx(small - 2.0, abs=1.0)


def test_compress_writes_one_tested_variant_per_target(searched, tmp_path, monkeypatch):
    root, run_dir = searched
    monkeypatch.setenv("ESM_NAS_HOME", str(root))
    config = CompressConfig(targets=(0.6, 0.3), distill=DistillConfig(epochs=2))
    result = compress(run_dir, tmp_path / "c", config, study_name="cmp")
    on_disk = json.loads((tmp_path / "c" / "compress.json").read_text())
    assert on_disk["entries"] == json.loads(json.dumps(result["entries"]))
    kinds = [(e["kind"], e["target"], e["n_layers"]) for e in result["entries"]]
    # each of the 3 layers holds about a third of the model: the depth-only cut nearest to
    # 60 % keeps two layers, nearest to 30 % one
    assert kinds == [("reference", 1.0, 3), ("pruned", 0.6, 3), ("depth", 0.6, 2),
                     ("pruned", 0.3, 3), ("depth", 0.3, 1)], kinds
    assert result["skipped"] == []
    reference = result["entries"][0]
    assert reference["n_parameters"] == result["teacher"]["n_parameters"]
    peptides = split_example()
    y = peptides.label_index(peptides.part("test")["label"])
    for entry in result["entries"]:
        assert {"n_parameters", "val", "test", "test_ci", "throughput", "path"} <= set(entry)
        share = entry["n_parameters"] / reference["n_parameters"]
        if entry["kind"] == "pruned":
            assert share <= entry["target"]
        elif entry["kind"] == "depth":
            assert abs(share - entry["target"]) < 0.2  # within half a layer
        assert entry["throughput"] > 0
        low, high = entry["test_ci"]["roc_auc"]
        assert low <= entry["test"]["roc_auc"] <= high
        if entry["kind"] == "reference":
            continue
        # the variant's folder predicts exactly what was tested
        predictor = Predictor(entry["path"])
        assert count_parameters(predictor.model) == entry["n_parameters"]
        probs = predictor.predict_sequences(list(peptides.part("test")["sequence"]))
        again = classification_metrics(y, probs[["p_AMP", "p_TM"]].to_numpy())
        assert again["roc_auc"] == pytest.approx(entry["test"]["roc_auc"], abs=1e-6)
    pruned = next(e for e in result["entries"] if e["kind"] == "pruned")
    assert pruned["heads"] and len(set(pruned["heads"])) == 1 and pruned["heads"][0] < 4
    card = (tmp_path / "c" / "pruned_060" / "README.md").read_text()
    assert "### Compaction" in card and "sequences/s before" in card
    # progress lives in an Optuna study: one finished trial per variant, with curves
    study = optuna.load_study(study_name="cmp", storage=f"sqlite:///{root}/studies.db")
    trials = study.get_trials()
    assert len(trials) == len(result["entries"]) - 1
    assert all(t.user_attrs["history"] and t.state.name == "COMPLETE" for t in trials)


def test_compress_cli_messages_and_exit_codes(searched, tmp_path, tiny_backbone, monkeypatch,
                                              capsys):
    root, run_dir = searched
    monkeypatch.setenv("ESM_NAS_HOME", str(root))
    (tmp_path / "empty").mkdir()
    assert main(["compress", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "has no report.json" in capsys.readouterr().err
    no_model = tmp_path / "no_model"
    no_model.mkdir()
    (no_model / "report.json").write_text((run_dir / "report.json").read_text().replace(
        str(run_dir), str(no_model)))
    assert main(["compress", str(no_model), "--out", str(tmp_path / "o")]) == 2
    assert "has no trained model" in capsys.readouterr().err
    for bad, words in (("1.5", "outside 0.05 to 1"), ("0.01", "outside 0.05 to 1"),
                       ("half", "is not a number")):
        assert main(["compress", str(run_dir), "--targets", bad, "--out",
                     str(tmp_path / "o")]) == 2
        assert words in capsys.readouterr().err
    assert main(["compress", str(run_dir), "--data", str(tmp_path / "nowhere"), "--out",
                 str(tmp_path / "o")]) == 2
    assert "is not at" in capsys.readouterr().err
    other = store_example("anticancer_vs_random.csv", root=root)
    assert main(["compress", str(run_dir), "--data", other.path, "--out",
                 str(tmp_path / "o")]) == 2
    assert "is not the one this search ran on" in capsys.readouterr().err
    frozen = _search(root, tiny_backbone, tmp_path / "frozen", "frozen")
    assert main(["compress", str(frozen), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "frozen backbone" in err and "only its head was trained" in err
    assert "trial" not in err and "At most this many parameters" in err  # the page's words
    assert not (tmp_path / "o" / "compress.json").exists()
    code = main(["compress", str(run_dir), "--targets", "50%", "--no-depth-baseline",
                 "--epochs", "1", "--out", str(tmp_path / "ok")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "pruned" in out and "seq/s" in out and "random (untrained) weights" in out
    entries = json.loads((tmp_path / "ok" / "compress.json").read_text())["entries"]
    assert [e["kind"] for e in entries] == ["reference", "pruned"]
    assert np.isfinite(entries[1]["speedup"])


def test_out_of_memory_is_retried_at_half_the_batch(searched, tmp_path, monkeypatch):
    root, run_dir = searched
    monkeypatch.setenv("ESM_NAS_HOME", str(root))
    batch_sizes: list[int] = []
    monkeypatch.setattr(compaction_mod, "train",
                        out_of_memory_once(compaction_mod.train, batch_sizes))
    result = compress(run_dir, tmp_path / "c", CompressConfig(
        targets=(0.5,), depth_baseline=False, distill=DistillConfig(epochs=1)),
        study_name="cmp-oom")
    assert batch_sizes == [32, 16]
    assert [e["kind"] for e in result["entries"]] == ["reference", "pruned"]
    study = optuna.load_study(study_name="cmp-oom", storage=f"sqlite:///{root}/studies.db")
    assert study.trials[0].user_attrs["oom_retry_batch_size"] == 16
