"""Publishing to a loopback fake Hub through the real huggingface_hub client, then loading the
received files in a fresh process with only torch + transformers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nas_core.publishing.config import PublishConfig, validate_repo_name
from nas_core.publishing.hub import PublishError, publish
from nas_core.publishing.predict import Predictor
from nas_core.runtime.launch import run_search
from nas_core.search.config import SearchConfig
from nas_core.search.space import SearchSpace
from tests.fakehub import FakeHub
from tests.helpers import ROOT, split_example

SEQUENCES = ["MKVLAAGIW", "GLFDIIKKIAESF", "AAGAATVLLVIVLLAGSYLAVLA", "KWKLFKKIEKVGQNIRDG"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tiny_backbone):
    """A real tiny-backbone search whose best model is exported (LoRA, merged at export)."""
    root = tmp_path_factory.mktemp("hubsearch")
    os.environ["ESM_NAS_HOME"] = str(root / "workspace")
    try:
        dataset = split_example()
        space = SearchSpace(backbones=(str(tiny_backbone),), adaptations=("lora",),
                            max_epochs_range=(2, 2), batch_sizes=(32,))
        run_search(SearchConfig("hub", space, n_trials=2), dataset, root / "out")
    finally:
        os.environ.pop("ESM_NAS_HOME", None)
    return root / "out" / "best_model"


def snapshot(model_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(model_dir.iterdir())}


def test_push_delivers_every_file_and_valid_metadata(searched, tmp_path):
    before = snapshot(searched)
    with FakeHub() as hub:
        url = publish(searched, PublishConfig("peptide-model"), token=hub.token,
                      endpoint=hub.url)
        assert url == f"{hub.url}/alice/peptide-model"
        repo = hub.repos["alice/peptide-model"]
        assert repo.private
        # every file of the export but the training sequences (unpublished data, opt-in)
        assert "training_sequences.fasta" in before
        assert set(repo.files) == set(before) - {"training_sequences.fasta"}
        assert repo.files["model.safetensors"] == before["model.safetensors"]
        routes = [(m, p.split("/")[1] if p.startswith("/lfs") else p) for m, p, _ in
                  hub.requests]
        assert ("GET", "/api/whoami-v2") in routes
        assert ("POST", "/api/repos/create") in routes
        assert ("POST", "/alice/peptide-model.git/info/lfs/objects/batch") in routes
        assert ("PUT", "lfs-upload") in routes
        assert ("POST", "/api/models/alice/peptide-model/commit/main") in routes
    card = repo.files["README.md"].decode()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] == "transformers"
    assert "license" not in meta and "No licence was chosen" in card  # never chosen for them
    assert meta["pipeline_tag"] == "text-classification"
    assert {"protein", "esm2", "neural-architecture-search"} <= set(meta["tags"])
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    report = json.loads((searched.parent / "report.json").read_text())
    assert metrics["roc_auc"] == pytest.approx(report["best"]["test"]["roc_auc"], abs=1e-4)
    assert "base_model" not in meta  # a local demo backbone is no Hub model
    assert str(ROOT) not in yaml.safe_dump(meta) and "/tmp" not in yaml.safe_dump(meta)
    assert "95% CI (bootstrap)" in card and "alice/peptide-model" in card
    assert "1 minus the probability given to the true class" in card  # what its MAE means
    assert "untrained demo backbone" in card
    assert "![Training and validation curves" in card
    assert snapshot(searched) == before  # the local export is untouched


def test_training_sequences_are_published_only_when_asked(searched):
    with FakeHub() as hub:
        publish(searched, PublishConfig("with-data", include_training_sequences=True),
                token=hub.token, endpoint=hub.url)
        files = hub.repos["alice/with-data"].files
    assert files["training_sequences.fasta"] == (searched / "training_sequences.fasta"
                                                 ).read_bytes()


def test_received_files_load_in_a_fresh_process_with_only_torch_and_transformers(
        searched, tmp_path):
    with FakeHub() as hub:
        publish(searched, PublishConfig("fresh"), token=hub.token, endpoint=hub.url)
        files = hub.repos["alice/fresh"].files
    received = tmp_path / "received"
    received.mkdir()
    for name, data in files.items():
        (received / name).write_bytes(data)
    code = f"""
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained({str(received)!r},
                                                           trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained({str(received)!r})
batch = tokenizer({SEQUENCES!r}, return_tensors="pt", padding=True)
with torch.no_grad():
    probs = model(**batch).logits.softmax(-1)
print(json.dumps({{"probs": probs.tolist(), "labels": model.config.id2label,
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in
                                   ("nas_core", "peft"))}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300, env={**os.environ, "PYTHONPATH": ""})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    ours = Predictor(searched).predict_sequences(SEQUENCES)
    assert result["labels"] == {"0": "AMP", "1": "TM"}
    import numpy as np

    np.testing.assert_allclose(result["probs"], ours[["p_AMP", "p_TM"]].to_numpy(), atol=1e-6)


def test_token_is_never_written_or_logged(searched, tmp_path, capfd, caplog, workspace):
    with FakeHub(token="hf_SECRET_write_token_123") as hub:
        publish(searched, PublishConfig("secret-check"), token=hub.token, endpoint=hub.url)
    captured = capfd.readouterr()
    assert "hf_SECRET" not in captured.out + captured.err + caplog.text
    for folder in (searched.parent, workspace, Path.home() / ".cache" / "huggingface"):
        if not folder.exists():
            continue
        for path in folder.rglob("*"):
            if path.is_file() and path.stat().st_size < 50_000_000:
                assert b"hf_SECRET" not in path.read_bytes(), path


def test_server_error_fails_clearly_and_retry_succeeds_without_retraining(searched):
    before = snapshot(searched)
    with FakeHub() as hub:
        hub.fail_next = 1000  # every write request fails
        with pytest.raises(PublishError, match="answered 500.*local export is unchanged"):
            publish(searched, PublishConfig("flaky"), token=hub.token, endpoint=hub.url)
        assert snapshot(searched) == before
        hub.fail_next = 0
        url = publish(searched, PublishConfig("flaky"), token=hub.token, endpoint=hub.url)
        assert url.endswith("alice/flaky")
        assert hub.repos["alice/flaky"].files["model.safetensors"] == \
            before["model.safetensors"]


def test_rejected_and_read_only_tokens(searched):
    with FakeHub() as hub:
        with pytest.raises(PublishError, match="rejected this token"):
            publish(searched, PublishConfig("x"), token="hf_wrong", endpoint=hub.url)
        assert not hub.repos
    with FakeHub(role="read") as hub:
        with pytest.raises(PublishError, match="can only read"):
            publish(searched, PublishConfig("x"), token=hub.token, endpoint=hub.url)
        assert not hub.repos


@pytest.mark.parametrize("name", ["", "a/b/c", "-bad", "bad-", "two--dashes", "dots..x",
                                  "sp ace", "x" * 97, "repo.git", "ünïcode"])
def test_repo_names_follow_hub_rules(name):
    with pytest.raises(ValueError):
        validate_repo_name(name)


@pytest.mark.parametrize("name", ["model", "lab/model-v1.2", "a", "Org_1/x_y"])
def test_valid_repo_names(name):
    assert validate_repo_name(name) == name


@pytest.mark.slow
def test_cli_push_and_predict_from_the_hub(searched, tmp_path):
    with FakeHub() as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token,
               "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf")}
        out = subprocess.run([sys.executable, "-m", "nas_core", "push", str(searched),
                              "--repo", "cli-model"], capture_output=True, text=True,
                             cwd=ROOT, env=env, timeout=300)
        assert out.returncode == 0, out.stderr
        assert f"published {hub.url}/alice/cli-model" in out.stdout
        assert "[100%] Published" in out.stdout
        data = tmp_path / "new.csv"
        data.write_text("sequence\n" + "\n".join(SEQUENCES) + "\n")
        out = subprocess.run([sys.executable, "-m", "nas_core", "predict", "alice/cli-model",
                              str(data), "--out", str(tmp_path / "p.csv")], capture_output=True,
                             text=True, cwd=ROOT, env=env, timeout=300)
        assert out.returncode == 0, out.stderr
        bad = subprocess.run([sys.executable, "-m", "nas_core", "push", str(searched),
                              "--repo", "bad--name"], capture_output=True, text=True,
                             cwd=ROOT, env=env, timeout=300)
        assert bad.returncode == 2 and "'--'" in bad.stderr
    import pandas as pd

    ours = Predictor(searched).predict_sequences(SEQUENCES)
    theirs = pd.read_csv(tmp_path / "p.csv")
    assert theirs["prediction"].tolist() == ours["prediction"].tolist()


def test_model_card_shows_hostile_names_as_text(searched):
    """Dataset names and class labels come from the user's file: never links or images."""
    from markdown_it import MarkdownIt

    from nas_core.common.report import Report
    from nas_core.publishing.card import render_card

    report = json.loads((searched / "esm_nas_report.json").read_text())
    report["dataset"]["name"] = "[x](javascript:alert(1))"
    counts = list(report["dataset"]["summary"]["classes"].values())
    report["dataset"]["summary"]["classes"] = {"![](http://127.0.0.1:9/pixel)": counts[0],
                                               "`code` [y]": counts[1]}
    card = render_card(Report.from_dict(report), repo_id="alice/m", has_curves=False)
    html = MarkdownIt("commonmark").enable(["table"]).render(card.split("---", 2)[2])
    assert "<a " not in html and "href" not in html
    assert set(re.findall(r'<img src="([^"]*)"', html)) <= {"test_identity.png"}  # its own
    text = html.replace("\u2060", "")  # the invisible word joiners that stop autolinks
    assert "[x](javascript:alert(1))" in text and "![](http://127.0.0.1:9/pixel)" in text


@pytest.mark.slow
def test_a_push_killed_mid_upload_leaves_no_partial_model_and_a_rerun_publishes(searched,
                                                                               tmp_path):
    """Issue 30, item 4: publishing killed (SIGKILL) after the weights were uploaded but
    before the commit leaves the Hub repository without any of the model's files (one commit
    is all or nothing) and the local export unchanged; the same command run again publishes
    it whole."""
    before = snapshot(searched)
    with FakeHub() as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token,
               "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf")}
        script = f"""
import os, signal
import huggingface_hub
real = huggingface_hub.HfApi.preupload_lfs_files
def preupload(self, *args, **kwargs):
    real(self, *args, **kwargs)  # the weights reach the Hub's storage...
    os.kill(os.getpid(), signal.SIGKILL)  # ...and the process dies before the commit
huggingface_hub.HfApi.preupload_lfs_files = preupload
from nas_core.cli import main
main(["push", {str(searched)!r}, "--repo", "killed-model"])
"""
        killed = subprocess.run([sys.executable, "-c", script], capture_output=True,
                                text=True, cwd=ROOT, env=env, timeout=300)
        assert killed.returncode == -9, killed.stdout + killed.stderr
        assert hub.lfs  # the upload had begun
        repo = hub.repos["alice/killed-model"]
        assert not repo.commits and "model.safetensors" not in repo.files
        assert snapshot(searched) == before
        again = subprocess.run([sys.executable, "-m", "nas_core", "push", str(searched),
                                "--repo", "killed-model"], capture_output=True, text=True,
                               cwd=ROOT, env=env, timeout=300)
        assert again.returncode == 0, again.stderr
        assert len(repo.commits) == 1
        assert repo.files["model.safetensors"] == before["model.safetensors"]
