from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from transformers import EsmModel

from nas_core.backbones.loading import encode, load_backbone, make_tiny_backbone, truncate
from nas_core.backbones.registry import REGISTRY, BackboneUnavailable, fits, resolve
from tests.helpers import ROOT


def test_registry_parameter_counts_match_real_models():
    from transformers import EsmConfig

    # built on the meta device: exact counts for the real configs without allocating weights
    for spec in (REGISTRY["esm2_t6_8M"], REGISTRY["esm2_t12_35M"]):
        config = EsmConfig(vocab_size=33, hidden_size=spec.hidden, num_hidden_layers=spec.layers,
                           num_attention_heads=spec.heads, intermediate_size=spec.intermediate,
                           position_embedding_type="rotary", pad_token_id=1)
        with torch.device("meta"):
            model = EsmModel(config, add_pooling_layer=False)
        assert sum(p.numel() for p in model.parameters()) == spec.n_parameters
    assert 7e6 < REGISTRY["esm2_t6_8M"].n_parameters < 8.5e6
    assert 2.5e9 < REGISTRY["esm2_t36_3B"].n_parameters < 3e9


def test_only_backbones_that_fit_are_offered():
    small = [s.name for s in REGISTRY.values() if fits(s, 8.0)]
    assert "esm2_t6_8M" in small and "esm2_t36_3B" not in small
    assert all(fits(s, None) for s in REGISTRY.values())


def test_tiny_backbone_make_load_truncate_reload(tmp_path):
    path = make_tiny_backbone(tmp_path / "tiny", layers=4, hidden=32, heads=4)
    spec = resolve(str(path))
    assert spec.untrained and spec.layers == 4 and "untrained" in spec.label
    model, tokenizer = load_backbone(str(path))
    assert sum(p.numel() for p in model.parameters()) == spec.n_parameters
    ids = torch.tensor(encode(["MKVLAAGIW", "ACDE"], tokenizer)[0])[None]
    assert ids.tolist()[0] == tokenizer("MKVLAAGIW")["input_ids"]
    truncate(model, 2)
    model.save_pretrained(tmp_path / "cut")
    tokenizer.save_pretrained(tmp_path / "cut")
    # plain transformers reloads the cut checkpoint without a size mismatch
    reloaded = EsmModel.from_pretrained(tmp_path / "cut", add_pooling_layer=False)
    assert len(reloaded.encoder.layer) == 2 and reloaded.config.num_hidden_layers == 2
    assert reloaded.contact_head.regression.in_features == 2 * 4
    out = reloaded(ids).last_hidden_state
    ref = model(ids).last_hidden_state  # the same model object, cut in place
    torch.testing.assert_close(out, ref)
    # the cut model is also loadable (and cut further) through our loader
    again, _ = load_backbone(str(tmp_path / "cut"), n_layers=1)
    assert len(again.encoder.layer) == 1
    with pytest.raises(ValueError, match="between 1 and 1"):
        truncate(again, 3)


def test_unknown_and_unreachable_backbones_say_what_to_do(tmp_path):
    with pytest.raises(BackboneUnavailable, match="unknown backbone"):
        resolve("esm3_huge")
    with pytest.raises(BackboneUnavailable, match="no config.json"):
        resolve(str(tmp_path))
    code = ("from nas_core.backbones.loading import load_backbone\n"
            "from nas_core.backbones.registry import BackboneUnavailable\n"
            "try:\n    load_backbone('esm2_t6_8M')\n"
            "except BackboneUnavailable as e:\n    print('MSG', e)\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=120)
    assert "MSG" in out.stdout, out.stderr
    assert "not in the local Hugging Face cache" in out.stdout
    assert "offline mode is on" in out.stdout and "--local-dir DIR" in out.stdout


def test_backbones_never_fetch_hub_kernels(tiny_backbone):
    """transformers 5 turns Hub kernels on by default: on a GPU the first training step would
    download kernel code (and fail offline, as it did on an H200 here)."""
    model, _ = load_backbone(str(tiny_backbone))
    assert not model.use_kernels
    model.train()  # would kernelize (and reach the Hub) if kernels were on
    assert not model.use_kernels
