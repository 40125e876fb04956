from __future__ import annotations

import numpy as np
import pytest
import torch

from nas_core.backbones.loading import encode, load_backbone
from nas_core.common.metrics import classification_metrics, regression_metrics
from nas_core.modeling.architecture import Architecture
from nas_core.modeling.batches import Encoded, collate, length_batches
from nas_core.modeling.build import build_model, count_parameters
from nas_core.modeling.losses import supervised_contrastive
from nas_core.modeling.modules import TaskInfo, init_head
from nas_core.modeling.schedule import WARMUP_STEPS, batch_lr
from nas_core.modeling.training import (
    TrainingCancelled,
    TrainSettings,
    predict_outputs,
    train,
    train_epoch,
)
from nas_core.publishing.export import export_model, load_model

SEQS = ["MKVLAAGIW", "ACDEFGHIK", "KKKKRRRRKK", "LLLLIVVVA", "GLFDIIKKIAESF", "WWPWWRR",
        "MKV", "AAAAAAAAAAAAAAAAAAAAAAA"] * 4


def test_length_batches_cover_everything_once_and_respect_token_cap():
    lengths = np.array([5, 50, 7, 48, 6, 49, 100, 3])
    batches = length_batches(lengths, 3)
    assert sorted(np.concatenate(batches).tolist()) == list(range(8))
    assert [lengths[b].tolist() for b in batches][0] == [3, 5, 6]
    capped = length_batches(lengths, 8, max_tokens=150)
    assert all(lengths[b].max() * len(b) <= 150 or len(b) == 1 for b in capped)
    shuffled = length_batches(lengths, 3, rng=np.random.default_rng(0))
    assert sorted(np.concatenate(shuffled).tolist()) == list(range(8))


def test_padding_and_batching_do_not_change_predictions(tiny_backbone):
    arch = Architecture(backbone=str(tiny_backbone), n_layers=3, pooling="attention",
                        head_layers=1, dropout=0.0)
    model, tok = build_model(arch, TaskInfo("binary", ["a", "b"]))
    ids = encode(SEQS, tok)
    one = predict_outputs(model, ids, device=torch.device("cpu"), pad_id=1, batch_size=1)
    many = predict_outputs(model, ids, device=torch.device("cpu"), pad_id=1, batch_size=16)
    np.testing.assert_allclose(one, many, atol=1e-5)


@pytest.mark.parametrize("adaptation", ["frozen", "lora", "dora", "ia3", "partial", "full"])
def test_adaptations_train_only_what_they_should(tiny_backbone, adaptation):
    arch = Architecture(backbone=str(tiny_backbone), n_layers=2, adaptation=adaptation,
                        finetune_layers=1, lora_rank=4, lora_alpha=8, max_epochs=2, lr=1e-2,
                        contrastive_weight=0.5, batch_size=8)
    model, tok = build_model(arch, TaskInfo("binary", ["a", "b"]))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("head.") for n in trainable)
    backbone_trainable = {n for n in trainable if n.startswith("esm.")}
    if adaptation == "frozen":
        assert not backbone_trainable
    elif adaptation in ("lora", "dora"):
        assert backbone_trainable and all("lora_" in n for n in backbone_trainable)
        assert any("magnitude" in n for n in backbone_trainable) == (adaptation == "dora")
    elif adaptation == "ia3":
        assert backbone_trainable and all("ia3_" in n for n in backbone_trainable)
    elif adaptation == "full":
        assert backbone_trainable == {n for n, _ in model.named_parameters()
                                      if n.startswith("esm.")}
    else:
        assert backbone_trainable and all("layer.1." in n or "emb_layer_norm_after" in n
                                          for n in backbone_trainable)
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters()
                     if not p.requires_grad}
    y = np.array([i % 2 for i in range(len(SEQS))])
    data = Encoded(encode(SEQS, tok), y)
    result = train(model, data, data, y, TrainSettings("roc_auc", torch.device("cpu"), seed=0),
                   pad_id=1)
    assert len(result.history) == 2
    assert result.history[0].val["loss"] > 0
    for n, p in model.named_parameters():
        if n in frozen_before:
            assert torch.equal(p, frozen_before[n]), n


@pytest.mark.parametrize("adaptation", ["lora", "dora", "ia3", "full"])
def test_export_merges_adapters_and_reloads_with_identical_predictions(tiny_backbone, tmp_path,
                                                                        adaptation):
    arch = Architecture(backbone=str(tiny_backbone), n_layers=2, adaptation=adaptation,
                        lora_rank=4, lora_alpha=8, max_epochs=1, lr=5e-2, dropout=0.0)
    model, tok = build_model(arch, TaskInfo("regression", None, 3.0, 0.5))
    y = np.linspace(-1, 1, len(SEQS))
    data = Encoded(encode(SEQS, tok), y)
    train(model, data, data, y * 0.5 + 3.0, TrainSettings("spearman", torch.device("cpu")),
          pad_id=1)
    before = predict_outputs(model, data.ids, device=torch.device("cpu"), pad_id=1)
    export_model(model, tok, tmp_path / "m")
    reloaded, _ = load_model(tmp_path / "m")
    after = predict_outputs(reloaded, data.ids, device=torch.device("cpu"), pad_id=1)
    np.testing.assert_allclose(before, after, rtol=1e-4, atol=1e-5)
    assert not any("lora" in k or "ia3" in k for k in reloaded.state_dict())
    assert count_parameters(reloaded) == count_parameters(model)
    # only safetensors, no pickles
    assert not list((tmp_path / "m").glob("*.bin")) and not list((tmp_path / "m").glob("*.pt"))


def test_supervised_contrastive_prefers_clustered_embeddings():
    groups = torch.tensor([0, 0, 1, 1])
    clustered = torch.tensor([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]])
    mixed = torch.tensor([[1.0, 0], [0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    assert supervised_contrastive(clustered, groups, 0.1) < supervised_contrastive(
        mixed, groups, 0.1)


def test_metrics():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    m = classification_metrics(np.array([0, 1, 1, 0]), probs)
    assert m["accuracy"] == 1.0 and m["roc_auc"] == 1.0 and m["mcc"] == 1.0
    assert m["mae"] == pytest.approx(np.mean([0.1, 0.2, 0.4, 0.3]))
    r = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert r["spearman"] == pytest.approx(1.0) and r["mae"] == pytest.approx(1 / 3)
    flat = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0]))
    assert flat["spearman"] == 0.0


def test_backbone_loader_truncates(tiny_backbone):
    model, _ = load_backbone(str(tiny_backbone), n_layers=1)
    assert len(model.encoder.layer) == 1


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_standard_head_loads_without_remote_code(tiny_backbone, tmp_path, task):
    """CLS pooling + dense(hidden)+tanh is transformers' own ESM classification head: the
    export then also loads as plain EsmForSequenceClassification, with identical outputs."""
    from transformers import EsmForSequenceClassification

    arch = Architecture(backbone=str(tiny_backbone), n_layers=2, pooling="cls", head_layers=1,
                        head_width=32, activation="tanh", dropout=0.0)
    info = TaskInfo("binary", ["neg", "pos"]) if task == "binary" else \
        TaskInfo("regression", None, 2.5, 0.7)
    model, tok = build_model(arch, info)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.head.parameters():
            p.normal_(0, 0.5)
    export_model(model, tok, tmp_path / "m")
    plain = EsmForSequenceClassification.from_pretrained(tmp_path / "m").eval()
    ids = encode(SEQS[:6], tok)
    ours = predict_outputs(model, ids, device=torch.device("cpu"), pad_id=1)
    batch = tok(SEQS[:6], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = plain(**batch).logits
    theirs = logits.softmax(-1).numpy() if task == "binary" else logits.squeeze(-1).numpy()
    np.testing.assert_allclose(theirs, ours, atol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_backbone):
    arch = Architecture(backbone=str(tiny_backbone), n_layers=3, adaptation="lora",
                        lora_rank=4, lora_alpha=8, dropout=0.0, lora_dropout=0.0)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model, tok = build_model(arch, TaskInfo("binary", ["a", "b"]),
                                 gradient_checkpointing=checkpointing)
        assert model.esm.get_base_model().is_activation_checkpointing is checkpointing
        init_head(model, 0)
        model.train()
        ids = encode(SEQS[:4], tok)
        tokens, mask = collate(ids, 1, torch.device("cpu"))
        logits, _ = model(tokens, mask)
        logits.sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()
                      if p.requires_grad and p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5)


def test_a_cancel_stops_training_before_the_next_step(tiny_backbone):
    arch = Architecture(backbone=str(tiny_backbone), n_layers=2, adaptation="lora",
                        lora_rank=4, lora_alpha=8, max_epochs=3, lr=1e-2, batch_size=2)
    model, tok = build_model(arch, TaskInfo("binary", ["a", "b"]))
    y = np.array([i % 2 for i in range(len(SEQS))])
    data = Encoded(encode(SEQS, tok), y)
    asked = {"n": 0}

    def should_stop() -> bool:  # the user presses Cancel during the second step
        asked["n"] += 1
        return asked["n"] > 2

    with pytest.raises(TrainingCancelled, match="at step 2 of epoch 1"):
        train(model, data, data, y, TrainSettings("roc_auc", torch.device("cpu"),
                                                  should_stop=should_stop), pad_id=1)
    assert len(SEQS) > 4  # an epoch has more steps than that: it stopped mid-epoch


def test_short_sequences_fill_a_batch_up_to_the_token_budget():
    lengths = np.array([23] * 1000 + [300] * 50)
    batches = length_batches(lengths, 32, max_tokens=32768, min_tokens=4096)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1050))  # each once
    short = [b for b in batches if lengths[b].max() == 23]
    assert max(len(b) for b in short) == 4096 // 23  # 178 peptides, not 32
    assert all(len(b) <= 32 for b in batches if lengths[b].max() == 300)  # long: unchanged
    assert all(len(b) * lengths[b].max() <= 32768 for b in batches)
    assert [len(b) for b in length_batches(lengths, 32)][:2] == [32, 32]  # off without it


def test_train_takes_one_settings_object():
    """The settings travel whole (nanoGPT's GPTConfig): train() stays a handful of arguments,
    and a value left unset is the architecture's own."""
    import inspect

    assert len(inspect.signature(train).parameters) <= 8
    settings = TrainSettings("roc_auc", torch.device("cpu"))
    assert settings.lr is None and settings.max_epochs is None and settings.batch_size is None


@pytest.mark.parametrize(("rule", "factor"), [("sqrt", 2.0), ("linear", 4.0), ("none", 1.0)])
def test_a_filled_batch_trains_at_the_rate_its_rule_gives(tiny_backbone, rule, factor):
    """Four times the architecture's batch: twice the rate under the square-root rule, four
    times under the linear one, once a warm-up has passed; a batch of the architecture's size
    keeps the architecture's rate."""
    arch = Architecture(backbone=str(tiny_backbone), n_layers=1, adaptation="full",
                        lr=1e-3, batch_size=2)
    model, tok = build_model(arch, TaskInfo("binary", ["a", "b"]))
    y = np.array([i % 2 for i in range(len(SEQS))], dtype=np.float64)
    data = Encoded(encode(SEQS, tok), y)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=arch.lr)
    settings = TrainSettings("roc_auc", torch.device("cpu"), lr_rule=rule)
    for batch, first_step, expected in ((np.arange(8), WARMUP_STEPS, factor),
                                        (np.arange(2), WARMUP_STEPS, 1.0),
                                        (np.arange(8), 0, 1 + (factor - 1) / WARMUP_STEPS)):
        train_epoch(model, data, [batch], np.zeros(len(y)), optimizer, params, epoch=1,
                    pad_id=1, settings=settings, first_step=first_step)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(arch.lr * expected)
    doubled = [batch_lr(1.0, n, 16, rule, WARMUP_STEPS) for n in (32, 64)]
    assert doubled[1] / doubled[0] == pytest.approx({"sqrt": 2 ** 0.5, "linear": 2.0,
                                                     "none": 1.0}[rule])


def test_the_rule_reaches_training_only_through_filled_batches(tiny_backbone):
    """train() with the rule on: the same weights as without it when no batch is filled,
    other weights when short sequences fill batches beyond the architecture's size."""
    arch = Architecture(backbone=str(tiny_backbone), n_layers=1, adaptation="full",
                        lr=1e-3, batch_size=2, max_epochs=2)
    y = np.array([i % 2 for i in range(len(SEQS))], dtype=np.float64)
    weights = {}
    for rule in ("none", "sqrt"):
        for fill in (None, 4096):
            model, tok = build_model(arch, TaskInfo("binary", ["a", "b"]))
            init_head(model, 0)
            data = Encoded(encode(SEQS, tok), y)
            train(model, data, data, y, TrainSettings("roc_auc", torch.device("cpu"),
                                                      min_tokens=fill, lr_rule=rule),
                  pad_id=1)
            weights[rule, fill] = torch.cat([p.detach().flatten()
                                             for p in model.parameters()])
    assert torch.equal(weights["none", None], weights["sqrt", None])
    assert not torch.allclose(weights["none", 4096], weights["sqrt", 4096])
