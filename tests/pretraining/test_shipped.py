"""The backbone pretrained here and shipped in assets/backbones/: offered first where no ESM-2
checkpoint has been downloaded, named with what it learnt from, and better than amino-acid
frequencies on proteins held out by homology (its own measured curve)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from transformers import EsmForMaskedLM

from nas_core.backbones.loading import load_backbone
from nas_core.backbones.registry import resolve, shipped_backbones
from nas_core.compression.compress import compress
from nas_core.compression.config import CompressConfig
from nas_core.data.store import DatasetStore
from nas_core.design.config import SuggestConfig
from nas_core.design.suggest import suggest
from nas_core.modeling.compaction_options import DistillConfig
from nas_core.publishing.predict import Predictor
from nas_core.runtime.launch import run_search
from nas_core.search.config import SearchConfig
from nas_core.search.presets import DEMO_BACKBONE, is_available, offered_backbones
from tests.helpers import store_example, tiny_space


def test_the_shipped_backbone_is_the_default_where_no_esm2_is_downloaded(workspace):
    shipped = shipped_backbones()
    assert shipped, "assets/backbones/ ships a pretrained backbone"
    offered = offered_backbones(None, workspace)
    available = [name for name, spec in offered.items() if is_available(spec)]
    assert available[0] == str(shipped[0])  # ESM-2 is not in this machine's cache
    assert list(offered)[-1].endswith(DEMO_BACKBONE)  # the negative control comes last
    spec = offered[available[0]]
    assert spec.lineage is not None and not spec.untrained
    assert spec.lineage.tokens_seen >= 10_000_000 and spec.lineage.validation_proteins > 1000
    assert "pretrained here from random weights" in spec.label
    assert "a stand-in for ESM-2, not a substitute" in spec.label


def test_the_shipped_backbone_learnt_more_than_amino_acid_frequencies():
    folder = shipped_backbones()[0]
    curve = json.loads((folder / "pretraining_history.json").read_text())["valid"]
    assert curve[-1]["model"] < curve[-1]["unigram"] < curve[0]["model"]
    assert [r["tokens"] for r in curve] == sorted(r["tokens"] for r in curve)
    card = (folder / "README.md").read_text()
    assert "UniProt" in card and f"{curve[-1]['model']:.2f}" in card
    # it loads as a search backbone (EsmModel) and as a masked LM with its head
    model, tokenizer = load_backbone(str(folder))
    lm = EsmForMaskedLM.from_pretrained(folder).eval()
    batch = tokenizer(["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"], return_tensors="pt")
    with torch.no_grad():
        assert model(**batch).last_hidden_state.shape[-1] == model.config.hidden_size
        assert lm(**batch).logits.shape[-1] == 33


@pytest.mark.slow
def test_everything_downstream_works_on_the_shipped_backbone(workspace, tmp_path):
    """Issue 29: search (fine-tuned, with an ensemble), Compress, export, predict
    and 'test these next' on the backbone pretrained here, as on any ESM-2 checkpoint."""
    (folder,) = [b for b in shipped_backbones() if b.name == "esm2-proteomes-0.8M"]
    shipped = resolve(str(folder))
    space = tiny_space(shipped.source, epochs=1, adaptations=("full", "lora"),
                       layers_range=(4, 4))
    stored = store_example()
    report = run_search(SearchConfig("downstream", space, n_trials=2, seed=0, ensemble_size=2),
                        DatasetStore().load(stored.id), tmp_path / "run",
                        dataset_path=stored.path)
    assert report is not None and report.best.backbone == shipped.source
    assert not report.best.backbone_untrained and "pretrained here" in report.best.description
    assert report.ensemble is not None and len(report.ensemble.members) == 2
    card = (tmp_path / "run" / "best_model" / "README.md").read_text()
    assert "untrained demo backbone" not in card
    result = compress(tmp_path / "run", tmp_path / "compressed",  # fine-tuned: compactable
                      CompressConfig(targets=(0.5,), depth_baseline=False,
                                     distill=DistillConfig(epochs=1)))
    assert [e["kind"] for e in result["entries"]] == ["reference", "pruned"]
    assert result["entries"][1]["n_parameters"] < 0.6 * result["entries"][0]["n_parameters"]
    frame = Predictor(tmp_path / "run" / "best_model").predict_sequences(["MKVLAAGWWQKRR"])
    assert len(frame) == 1
    picks = suggest(tmp_path / "run", pd.DataFrame({
        "id": ["a", "b", "c"], "sequence": ["GLFDIVKKVVGALGSL", "KWKLFKKIEKVGQNIRDG",
                                            "MKTAYIAKQRQISFVKSHFSRQ"]}),
                    SuggestConfig(batch=2, goal="class", target_class="AMP"))
    assert picks.ensemble and len(picks.frame) == 2
