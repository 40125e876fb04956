"""The report is one typed record: every reader goes through it, old files still read."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from nas_core.common.report import (
    REPORT_VERSION,
    Comparison,
    ParetoPoint,
    Report,
    load_report,
)
from nas_core.common.tasks import Task
from nas_core.publishing.card import render_card

DATA = Path(__file__).parent / "data"
# written by finalise before the report became a type (commit 5d90eab): a classification
# search whose best trial was pruned and distilled, with calibration and a 3-member ensemble;
# a regression search; and the ensemble's own card report of the first
VERSION_1 = ["report_v1_classification.json", "report_v1_regression.json"]


@pytest.mark.parametrize("name", VERSION_1)
def test_a_report_written_before_the_type_reads_without_loss(name):
    raw = json.loads((DATA / name).read_text())
    report = Report.from_dict(raw)
    assert report.version == 1 and "version" not in raw
    assert isinstance(report.task, Task) and report.dataset.summary.task is report.task
    assert report.best.test[report.metric] == raw["best"]["test"][raw["metric"]]
    assert report.leakage is not None and report.leakage.n == raw["leakage"]["n"]
    again = report.to_dict()
    assert again.pop("version") == 1
    assert again == raw  # nothing dropped, nothing renamed, nothing added


def test_the_typed_blocks_of_an_old_report():
    report = load_report(DATA / "report_v1_classification.json")
    assert report is not None
    assert report.best.compaction is not None and report.best.teacher_n_parameters
    assert isinstance(report.vs_reference, Comparison)
    assert report.calibration is not None and report.calibration.reliability_after
    ens = report.ensemble
    assert ens is not None and ens.built and ens.vs_best is not None
    assert ens.temperature is not None and ens.members[0].trial == report.best.trial
    assert report.test_value() == report.best.test["roc_auc"]
    regression = load_report(DATA / "report_v1_regression.json")
    assert regression is not None and regression.task is Task.REGRESSION
    assert regression.calibration is None and regression.dataset.summary.label is not None


def test_an_old_ensemble_card_report_reads_as_the_ensembles_card():
    raw = json.loads((DATA / "ensemble_card_v1.json").read_text())
    card = Report.from_dict(raw)
    assert card.is_ensemble_card and card.best.trial is None
    text = render_card(card, repo_id="alice/ens")
    assert "## Architecture: an ensemble" in text and "own temperature, T = " in text


def test_a_new_report_round_trips_and_says_its_version(tmp_path):
    report = load_report(DATA / "report_v1_classification.json")
    assert report is not None
    current = replace(report, version=REPORT_VERSION, pareto=[ParetoPoint(3, 0.91, 1234)])
    current.write(tmp_path / "report.json")
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["version"] == REPORT_VERSION
    assert on_disk["pareto"] == [{"trial": 3, "roc_auc": 0.91, "n_parameters": 1234}]
    assert load_report(tmp_path) == current  # the folder or the file
    assert load_report(tmp_path / "nothing") is None


def test_the_ensembles_card_and_the_public_report():
    report = load_report(DATA / "report_v1_classification.json")
    assert report is not None and report.ensemble is not None
    card = report.ensemble_card()
    assert card.best.n_parameters == report.ensemble.n_parameters
    assert card.best.test == report.ensemble.test and card.calibration is None
    public = report.public().to_dict()
    assert "storage" not in public and "model_dir" not in public["best"]
    assert "path" not in public["dataset"]
