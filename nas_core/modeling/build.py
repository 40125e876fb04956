"""Building a candidate from its architecture, its trainable state, trial checkpoints and the
parameter counts the search reports."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from nas_core.backbones.loading import EsmTokenizer, load_backbone
from nas_core.backbones.registry import resolve
from nas_core.modeling.architecture import Architecture
from nas_core.modeling.modules import SequencePredictor, TaskInfo


def deployed_parameters(arch: Architecture, head: nn.Module) -> int:
    """Parameters of the exported model (backbone at its depth, no contact head, + ``head``:
    the pooling and head modules)."""
    spec = resolve(arch.backbone)
    contact = arch.n_layers * spec.heads + 1
    return spec.parameters_at_depth(arch.n_layers) - contact + sum(
        p.numel() for p in head.parameters())


def _lora_targets(arch: Architecture) -> list[str]:
    return arch.lora_targets.split(",")


def build_model(arch: Architecture, info: TaskInfo, *,
                gradient_checkpointing: bool = False) -> tuple[SequencePredictor, EsmTokenizer]:
    """Load the backbone cut to ``arch.n_layers``, apply the adaptation, add pooling + head.

    Returns ``(model, tokenizer)``; only the parameters the adaptation trains require grad.
    ``gradient_checkpointing`` trades compute for memory when the backbone is trained (large
    backbones on small GPUs).
    """
    backbone, tokenizer = load_backbone(arch.backbone, n_layers=arch.n_layers)
    backbone.contact_head = None  # never used for prediction; keeps saved weights lean
    for p in backbone.parameters():
        p.requires_grad_(False)
    if gradient_checkpointing and arch.adaptation != "frozen":
        backbone.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False})
    if arch.adaptation == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=arch.lora_rank, lora_alpha=arch.lora_alpha,  # type: ignore[arg-type]
                            lora_dropout=arch.lora_dropout, target_modules=_lora_targets(arch),
                            bias="none")
        with warnings.catch_warnings():  # transformers' own deprecation, raised inside peft
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
            backbone = get_peft_model(backbone, config)
    elif arch.adaptation == "partial":
        top = min(arch.finetune_layers, arch.n_layers)
        for layer in backbone.encoder.layer[-top:]:
            for p in layer.parameters():
                p.requires_grad_(True)
        if backbone.encoder.emb_layer_norm_after is not None:
            for p in backbone.encoder.emb_layer_norm_after.parameters():
                p.requires_grad_(True)
    return SequencePredictor(backbone, arch, info), tokenizer


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
                          info: TaskInfo) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), str(directory / "trainable.safetensors"))
    (directory / "architecture.json").write_text(json.dumps(
        {"architecture": arch.to_dict(), "task": info.to_dict()}, indent=2))


def load_trial_checkpoint(directory: Path) -> tuple[SequencePredictor, EsmTokenizer]:
    meta = json.loads((directory / "architecture.json").read_text())
    arch = Architecture.from_dict(meta["architecture"])
    model, tokenizer = build_model(arch, TaskInfo(**meta["task"]))
    load_trainable_state(model, load_file(str(directory / "trainable.safetensors")))
    return model, tokenizer


def count_parameters(model: nn.Module) -> int:
    """Parameters of the deployed model (LoRA counted as merged, i.e. not at all)."""
    return sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
