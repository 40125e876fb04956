"""The backbone pretrained here and shipped in assets/backbones/: offered first where no ESM-2
checkpoint has been downloaded, named with what it learnt from, and better than amino-acid
frequencies on proteins held out by homology (its own measured curve)."""

from __future__ import annotations

import json

import torch
from transformers import EsmForMaskedLM

from nas_core.backbones.loading import load_backbone
from nas_core.backbones.registry import shipped_backbones
from nas_core.search.presets import DEMO_BACKBONE, is_available, offered_backbones


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
