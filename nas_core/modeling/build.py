"""Building a candidate from its architecture, its trainable state, trial checkpoints and the
parameter counts the search reports."""

from __future__ import annotations

import copy as _copy
import json
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from nas_core.backbones.loading import EsmTokenizer, load_backbone
from nas_core.backbones.registry import resolve
from nas_core.modeling.architecture import LORA_LIKE, Architecture
from nas_core.modeling.modules import SequencePredictor, TaskInfo
from nas_core.modeling.pruning import Compaction
from nas_core.modeling.shapes import reshape_encoder

# IA3 (Liu et al. 2022) on ESM: rescale keys, values and the feed-forward activations (the
# input of each layer's output projection; not the attention's output.dense)
IA3_TARGETS = r".*\.(key|value)$|.*layer\.\d+\.output\.dense$"
IA3_FEEDFORWARD = r".*layer\.\d+\.output\.dense$"
ADAPTER_MARKS = ("lora_", "ia3_")  # parameter names of adapters (merged away on export)


def deployed_parameters(arch: Architecture, head: nn.Module) -> int:
    """Parameters of the exported model (backbone at its depth, no contact head, + ``head``:
    the pooling and head modules)."""
    spec = resolve(arch.backbone)
    contact = arch.n_layers * spec.heads + 1
    return spec.parameters_at_depth(arch.n_layers) - contact + sum(
        p.numel() for p in head.parameters())


def _lora_targets(arch: Architecture) -> list[str]:
    return arch.lora_targets.split(",")


def build_model(arch: Architecture, info: TaskInfo, *, gradient_checkpointing: bool = False,
                compaction: Compaction | None = None
                ) -> tuple[SequencePredictor, EsmTokenizer]:
    """Load the backbone cut to ``arch.n_layers``, apply the adaptation, add pooling + head.

    Returns ``(model, tokenizer)``; only the parameters the adaptation trains require grad.
    ``gradient_checkpointing`` trades compute for memory when the backbone is trained (large
    backbones on small GPUs). With ``compaction`` the layers get its (smaller) shapes: the
    weights of a compacted model's checkpoint then load into it.
    """
    backbone, tokenizer = load_backbone(arch.backbone, n_layers=arch.n_layers)
    backbone.contact_head = None  # never used for prediction; keeps saved weights lean
    if compaction is not None:
        reshape_encoder(backbone, compaction.heads, compaction.ffn)
    for p in backbone.parameters():
        p.requires_grad_(False)
    if gradient_checkpointing and arch.adaptation != "frozen":
        # transformers 5.2x renamed it (the old name warns); earlier 5.x have the old only
        enable = getattr(backbone, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            backbone.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False})
    if arch.adaptation in LORA_LIKE or arch.adaptation == "ia3":
        backbone = _with_adapters(backbone, arch)
    elif arch.adaptation == "partial":
        top = min(arch.finetune_layers, arch.n_layers)
        for layer in backbone.encoder.layer[-top:]:
            for p in layer.parameters():
                p.requires_grad_(True)
        if backbone.encoder.emb_layer_norm_after is not None:
            for p in backbone.encoder.emb_layer_norm_after.parameters():
                p.requires_grad_(True)
    elif arch.adaptation == "full":
        for p in backbone.parameters():
            p.requires_grad_(True)
    return SequencePredictor(backbone, arch, info), tokenizer


def _with_adapters(backbone, arch: Architecture):
    """LoRA, DoRA or IA3 adapters from ``peft`` (merged into plain weights on export)."""
    from peft import IA3Config, LoraConfig, get_peft_model

    if arch.adaptation == "ia3":
        config: Any = IA3Config(target_modules=IA3_TARGETS,
                                feedforward_modules=IA3_FEEDFORWARD)
    else:
        config = LoraConfig(r=arch.lora_rank, lora_alpha=arch.lora_alpha,  # type: ignore
                            lora_dropout=arch.lora_dropout, target_modules=_lora_targets(arch),
                            bias="none", use_dora=arch.adaptation == "dora")
    with warnings.catch_warnings():  # transformers' own deprecation, raised inside peft
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        return get_peft_model(backbone, config)


def merged_copy(model: SequencePredictor) -> SequencePredictor:
    """A copy of ``model`` with its adapters merged into plain weights and every parameter
    trainable: the starting point of pruning and distillation (``model`` is unchanged)."""
    copy = SequencePredictor.__new__(SequencePredictor)
    nn.Module.__init__(copy)
    backbone: Any = model.esm
    if hasattr(backbone, "merge_and_unload"):
        clone = copy_module(backbone)
        backbone = clone.merge_and_unload()
    else:
        backbone = copy_module(backbone)
    copy.esm = backbone
    copy.add_head(model.arch, model.info, backbone.config.hidden_size, model.eos_id)
    copy.head.load_state_dict(model.head.state_dict())
    if model.pool is not None and copy.pool is not None:
        copy.pool.load_state_dict(model.pool.state_dict())
    for p in copy.parameters():
        p.requires_grad_(True)
    return copy


def copy_module(module: nn.Module) -> Any:
    return _copy.deepcopy(module)


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters training changed: enough, with the backbone, to rebuild the model."""
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().to("cpu", copy=True).contiguous()
            for k, v in model.state_dict().items() if k in names}


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    expected = {n for n, p in model.named_parameters() if p.requires_grad}
    missing = expected - set(state)
    if missing:
        raise ValueError(f"checkpoint lacks {len(missing)} trained tensor(s), e.g. "
                         f"{sorted(missing)[:3]}: it belongs to another architecture.")
    model.load_state_dict(state, strict=False)


def save_trial_checkpoint(model: nn.Module, directory: Path, arch: Architecture,
                          info: TaskInfo, compaction: Compaction | None = None,
                          extra: dict | None = None) -> None:
    """The trained tensors and how to rebuild the model around them. A compacted model is
    saved whole, with its shapes (``compaction``) and the architecture it was built as."""
    directory.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), str(directory / "trainable.safetensors"))
    meta = {"architecture": arch.to_dict(), "task": info.to_dict(), **(extra or {})}
    if compaction is not None:
        meta["compaction"] = compaction.to_dict()
    (directory / "architecture.json").write_text(json.dumps(meta, indent=2))


def load_trial_checkpoint(directory: Path) -> tuple[SequencePredictor, EsmTokenizer]:
    meta = json.loads((directory / "architecture.json").read_text())
    arch = Architecture.from_dict(meta["architecture"])
    compaction = Compaction.from_dict(meta.get("compaction"))
    if compaction is not None:  # the student: every weight saved, built as fully trainable
        arch = replace(arch, adaptation="full")
    model, tokenizer = build_model(arch, TaskInfo(**meta["task"]), compaction=compaction)
    load_trainable_state(model, load_file(str(directory / "trainable.safetensors")))
    if compaction is not None:
        model.compaction = compaction
        model.arch = Architecture.from_dict(meta["architecture"])
    return model, tokenizer


def count_parameters(model: nn.Module) -> int:
    """Parameters of the deployed model (LoRA counted as merged, i.e. not at all)."""
    return sum(p.numel() for n, p in model.named_parameters()
               if not any(mark in n for mark in ADAPTER_MARKS))
