from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.helpers import ASSETS, ROOT

pytestmark = [pytest.mark.slow]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas_core", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, env=env)


def test_validate_good_file_exits_0_with_summary():
    out = run_cli("validate", str(ASSETS / "amp_vs_transmembrane.csv"))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "412 sequences, task: binary" in out.stdout
    assert "classes: AMP 206 (50%), TM 206 (50%)" in out.stdout
    assert "split: train 328, valid 42, test 42" in out.stdout


def test_validate_bad_file_exits_2_listing_every_problem(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("sequence,label\nMKV1,a\nMK#,b\n" + "".join(
        f"{'MKV' + 'A' * i},{'ab'[i % 2]}\n" for i in range(12)))
    out = run_cli("validate", str(bad))
    assert out.returncode == 2
    assert "row 2: invalid character(s) '1'" in out.stdout
    assert "row 3: invalid character(s) '#'" in out.stdout
    assert "--fix drop_invalid" in out.stdout
    fixed = run_cli("validate", str(bad), "--fix", "drop_invalid")
    assert fixed.returncode == 0, fixed.stdout
    assert "dropped 2 row(s)" in fixed.stdout


def test_validate_json_and_conflict_fix_flag():
    path = str(ASSETS / "amp_vs_uniprot.csv")
    out = run_cli("validate", path, "--json")
    assert out.returncode == 2
    report = json.loads(out.stdout)
    assert report["ok"] is False and report["rows_read"] == 5200
    assert report["offered_fixes"]["drop_conflicts"].startswith("Drop the 22 conflicting")
    assert sum(p["code"] == "conflicting_labels" for p in report["problems"]) == 22
    fixed = json.loads(run_cli("validate", path, "--json", "--fix", "drop_conflicts").stdout)
    assert fixed["ok"] and fixed["summary"]["n_sequences"] == 4620


def test_unreadable_file_and_usage_errors(tmp_path):
    junk = tmp_path / "junk.xlsx"
    junk.write_bytes(b"\x00\x01\x02")
    out = run_cli("validate", str(junk))
    assert out.returncode == 2 and "not a readable Excel workbook" in out.stdout
    out = run_cli("validate", str(ASSETS / "amp_vs_transmembrane.csv"), "--task", "bogus")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_make_tiny_backbone(tmp_path):
    out = run_cli("make-tiny-backbone", str(tmp_path / "tb"), "--layers", "3", "--hidden", "16",
                  "--heads", "2")
    assert out.returncode == 0, out.stderr
    assert "3 layers" in out.stdout and "untrained demo" in out.stdout
    assert (tmp_path / "tb" / "model.safetensors").exists()
    assert (tmp_path / "tb" / "vocab.txt").exists()
    bad = run_cli("make-tiny-backbone", str(tmp_path / "x"), "--hidden", "10", "--heads", "4")
    assert bad.returncode == 2 and "multiple of heads" in bad.stderr


def test_search_then_predict_headless(tmp_path, tiny_backbone):
    import os

    env = dict(os.environ, ESM_NAS_HOME=str(tmp_path / "ws"))
    out = run_cli("search", str(ASSETS / "amp_vs_transmembrane.csv"), "--backbone",
                  str(tiny_backbone), "--trials", "3", "--max-epochs", "2", "--study", "cli",
                  "--seed", "1", "--out", str(tmp_path / "out"), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    trial_lines = [line for line in out.stdout.splitlines() if line.startswith("trial ")]
    assert len(trial_lines) == 3
    assert "held-out test" in out.stdout and "reference (logistic regression" in out.stdout
    assert "estimated run time on this machine: " in out.stdout  # as the Search page says
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["study"] == "cli" and report["n_trials"] == 3
    # the same command resumes: the budget is already spent, nothing more runs
    again = run_cli("search", str(ASSETS / "amp_vs_transmembrane.csv"), "--backbone",
                    str(tiny_backbone), "--trials", "3", "--max-epochs", "2", "--study", "cli",
                    "--out", str(tmp_path / "out2"), env=env)
    assert again.returncode == 0 and "trial " not in again.stdout.split("\n\n")[0].split(
        "\n", 1)[-1]
    preds = tmp_path / "preds.csv"
    out = run_cli("predict", str(tmp_path / "out" / "best_model"),
                  str(ASSETS / "amp_vs_transmembrane.csv"), "--out", str(preds), env=env)
    assert out.returncode == 0, out.stderr
    import pandas as pd

    frame = pd.read_csv(preds)
    assert len(frame) == 412 and {"prediction", "p_AMP", "p_TM"} <= set(frame.columns)
    np_sum = (frame["p_AMP"] + frame["p_TM"]).round(5)
    assert (np_sum == 1.0).all()
    bad = tmp_path / "new.csv"
    bad.write_text("sequence\nMKVLA\nMK1V\n")
    out = run_cli("predict", str(tmp_path / "out" / "best_model"), str(bad), "--out",
                  str(tmp_path / "p.csv"), env=env)
    assert out.returncode == 2 and "row 3: invalid character(s) '1'" in out.stderr
    assert not (tmp_path / "p.csv").exists()


def test_search_usage_errors(tmp_path, tiny_backbone):
    out = run_cli("search", str(ASSETS / "amp_vs_transmembrane.csv"), "--backbone",
                  "esm2_t6_8M,nonsense_model", "--trials", "2", "--out", str(tmp_path))
    assert out.returncode == 2 and "unknown backbone 'nonsense_model'" in out.stderr
    out = run_cli("search", str(ASSETS / "amp_vs_transmembrane.csv"), "--backbone",
                  str(tiny_backbone), "--trials", "2", "--metric", "spearman", "--out",
                  str(tmp_path))
    assert out.returncode == 2 and "does not apply to a binary task" in out.stderr


def test_predict_needs_a_model(tmp_path):
    out = run_cli("predict", str(tmp_path / "missing_model"),
                  str(ASSETS / "amp_vs_transmembrane.csv"), "--out",
                  str(tmp_path / "p.csv"))
    assert out.returncode == 2 and "no model directory" in out.stderr


def test_search_refuses_an_unreachable_backbone_before_any_trial(tmp_path):
    import os

    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"),
               ESM_NAS_HOME=str(tmp_path / "ws"))
    out = run_cli("search", str(ASSETS / "amp_vs_transmembrane.csv"), "--backbone",
                  "esm2_t6_8M", "--trials", "2", "--out", str(tmp_path / "out"), env=env)
    assert out.returncode == 2
    assert "not in the local Hugging Face cache" in out.stderr and "trial" not in out.stdout
    # checked before the data is read (issue 31, item 12: it failed after the slow read)
    assert "reading" not in out.stdout + out.stderr and not (tmp_path / "ws" / "datasets").exists()


def test_search_takes_the_backbone_names_the_app_shows_and_names_its_metric(tmp_path):
    """Issue 31, item 12: `untrained-demo` (as the Search page names it) was refused; trial
    lines said `value=0.5641` without the metric; the summary gave no interval."""
    import os

    env = dict(os.environ, ESM_NAS_HOME=str(tmp_path / "ws"))
    out = run_cli("search", str(ASSETS / "amp_vs_transmembrane.csv"), "--backbone",
                  "untrained-demo", "--trials", "2", "--max-epochs", "1", "--adaptation",
                  "frozen", "--out", str(tmp_path / "out"), env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    trials = [line for line in out.stdout.splitlines() if line.startswith("trial ")]
    assert len(trials) == 2 and all("validation roc_auc=" in line for line in trials), trials
    assert "untrained-demo" in trials[0]
    summary = out.stdout.split("trials:", 1)[1]
    assert re.search(r"held-out test \d\.\d{4} \[\d\.\d{3}, \d\.\d{3}\]", summary), summary
    assert "the model minus the reference: " in summary
