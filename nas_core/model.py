"""A candidate model: an ESM-2 backbone (cut to k layers, adapted) + pooling + a head.

Saved model directories are plain ``transformers``-style folders: ``config.json`` (the ESM
config plus an ``esm_nas`` block with the task, label names and every architecture choice),
``model.safetensors`` (LoRA merged, no pickles) and the tokenizer files.
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from nas_core.backbones import EsmConfig, EsmModel, EsmTokenizer, load_backbone
from nas_core.space import Architecture

REMOTE_MODULE = "modeling_esm_nas"
REMOTE_CLASS = "EsmNasForSequenceClassification"
ACTIVATION_LAYERS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}
WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class TaskInfo:
    """What the head predicts."""

    task: str  # binary | multiclass | regression
    label_names: list[str] | None
    target_mean: float = 0.0  # regression targets are standardised for training
    target_std: float = 1.0

    @property
    def n_outputs(self) -> int:
        return 1 if self.task == "regression" else len(self.label_names or [])

    def to_dict(self) -> dict:
        return {"task": self.task, "label_names": self.label_names,
                "target_mean": self.target_mean, "target_std": self.target_std}


class AttentionPooling(nn.Module):
    """Learned softmax weights over residues."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.score = nn.Linear(hidden, 1)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(states).squeeze(-1).float()
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1).to(states.dtype)
        return torch.einsum("bl,blh->bh", weights, states)


def pool_hidden(states: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                pooling: str, pool: nn.Module | None, eos_id: int) -> torch.Tensor:
    """One vector per sequence: the CLS token, or the (learned-)weighted mean of the residues
    (``<cls>``, ``<eos>`` and padding excluded)."""
    if pooling == "cls":
        return states[:, 0]
    residues = attention_mask.bool() & (input_ids != eos_id)
    residues[:, 0] = False  # <cls>
    if pool is not None:
        return pool(states, residues)
    weights = residues.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def make_head(hidden: int, arch: Architecture, n_outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = hidden
    for _ in range(arch.head_layers):
        layers += [nn.Dropout(arch.dropout), nn.Linear(width, arch.head_width),
                   ACTIVATION_LAYERS[arch.activation]()]
        width = arch.head_width
    layers += [nn.Dropout(arch.dropout), nn.Linear(width, n_outputs)]
    return nn.Sequential(*layers)


class SequencePredictor(nn.Module):
    def __init__(self, backbone: nn.Module, arch: Architecture, info: TaskInfo) -> None:
        super().__init__()
        self.esm = backbone
        self.arch = arch
        self.info = info
        hidden = backbone.config.hidden_size
        self.pool = AttentionPooling(hidden) if arch.pooling == "attention" else None
        self.head = make_head(hidden, arch, info.n_outputs)
        self.eos_id = backbone.config.eos_token_id if backbone.config.eos_token_id is not None \
            else 2

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.esm(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.pool_states(states, input_ids, attention_mask)

    def pool_states(self, states: torch.Tensor, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor) -> torch.Tensor:
        return pool_hidden(states, input_ids, attention_mask, self.arch.pooling, self.pool,
                           self.eos_id)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.embed(input_ids, attention_mask)
        return self.head(pooled), pooled


class HeadModel(nn.Module):
    """Pooling + head of a frozen-backbone candidate, trained on cached representations
    (pooled ones, or per-residue ones for attention pooling).

    Its parameter names are those of the full :class:`SequencePredictor`'s trainable part, so
    its checkpoint rebuilds the full model (backbone + this head) exactly.
    """

    esm = None

    def __init__(self, arch: Architecture, info: TaskInfo, hidden: int, eos_id: int = 2
                 ) -> None:
        super().__init__()
        self.arch, self.info, self.eos_id = arch, info, eos_id
        self.pool = AttentionPooling(hidden) if arch.pooling == "attention" else None
        self.head = make_head(hidden, arch, info.n_outputs)

    def pool_states(self, states: torch.Tensor, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor) -> torch.Tensor:
        return pool_hidden(states, input_ids, attention_mask, self.arch.pooling, self.pool,
                           self.eos_id)


def init_head(model: nn.Module, seed: int) -> None:
    """Seeded initialisation of the head (and attention pooling): the same trial seed gives
    the same start whether the backbone runs or its cached features are used."""
    import math

    generator = torch.Generator().manual_seed(seed)
    for part in (model.head, getattr(model, "pool", None)):
        if part is None:
            continue
        for module in part.modules():
            if isinstance(module, nn.Linear):
                with torch.no_grad():
                    nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                    bound = 1 / math.sqrt(module.in_features)
                    module.bias.uniform_(-bound, bound, generator=generator)


def deployed_parameters(arch: Architecture, head: nn.Module) -> int:
    """Parameters of the exported model (backbone at its depth, no contact head, + ``head``:
    the pooling and head modules)."""
    from nas_core.backbones import resolve

    spec = resolve(arch.backbone)
    contact = arch.n_layers * spec.heads + 1
    return spec.parameters_at_depth(arch.n_layers) - contact + sum(
        p.numel() for p in head.parameters())


def _lora_targets(arch: Architecture) -> list[str]:
    return arch.lora_targets.split(",")


def build_model(arch: Architecture, info: TaskInfo, *,
                gradient_checkpointing: bool = False) -> tuple[SequencePredictor, object]:
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

        config = LoraConfig(r=arch.lora_rank, lora_alpha=arch.lora_alpha,
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


def load_trial_checkpoint(directory: Path) -> tuple[SequencePredictor, object]:
    meta = json.loads((directory / "architecture.json").read_text())
    arch = Architecture.from_dict(meta["architecture"])
    model, tokenizer = build_model(arch, TaskInfo(**meta["task"]))
    load_trainable_state(model, load_file(str(directory / "trainable.safetensors")))
    return model, tokenizer


# -- exported, self-contained model directories -------------------------------------------
TRAINING_SEQUENCES = "training_sequences.fasta"


def export_model(model: SequencePredictor, tokenizer, directory: str | Path, *,
                 extra: dict | None = None, train_sequences: list[str] | None = None) -> Path:
    """Write a self-contained model directory: LoRA merged, safetensors only. With
    ``train_sequences``, also a FASTA of them, so predictions can say how far each new
    sequence is from what the model has seen (left out when publishing, unless asked)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    backbone = model.esm
    if hasattr(backbone, "merge_and_unload"):  # LoRA: fold adapters into the weights
        backbone = backbone.merge_and_unload()
    config = backbone.config.to_dict()
    config.pop("esm_nas_untrained", None)
    config["esm_nas"] = {
        "architecture": model.arch.to_dict(),
        **model.info.to_dict(),
        "backbone_untrained": bool(getattr(backbone.config, "esm_nas_untrained", False)),
        **(extra or {}),
    }
    names = model.info.label_names or ["value"]
    config["id2label"] = dict(enumerate(names))
    config["label2id"] = {n: i for i, n in enumerate(names)}
    config["problem_type"] = ("regression" if model.info.task == "regression" else
                              "single_label_classification")
    # loadable anywhere with only torch + transformers, through the bundled modelling file
    config["architectures"] = [REMOTE_CLASS]
    config["auto_map"] = {"AutoModelForSequenceClassification":
                          f"{REMOTE_MODULE}.{REMOTE_CLASS}"}
    state = {f"esm.{k}": v for k, v in backbone.state_dict().items()
             if not k.startswith("contact_head.")}
    state.update({k: v for k, v in model.state_dict().items() if not k.startswith("esm.")})
    state.update(standard_head_weights(model))
    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    save_file(state, str(directory / WEIGHTS), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(config, indent=2, default=str))
    tokenizer.save_pretrained(directory)
    shutil.copy(Path(__file__).parent / "hf_export" / f"{REMOTE_MODULE}.py", directory)
    if train_sequences:
        with open(directory / TRAINING_SEQUENCES, "w") as f:
            for i, seq in enumerate(train_sequences):
                f.write(f">train_{i}\n{seq}\n")
    return directory


def is_standard_head(arch: Architecture, hidden: int) -> bool:
    """Exactly transformers' EsmClassificationHead: CLS token, dense(hidden) + tanh, out."""
    return (arch.pooling == "cls" and arch.head_layers == 1 and arch.head_width == hidden
            and arch.activation == "tanh")


def standard_head_weights(model: SequencePredictor) -> dict[str, torch.Tensor]:
    """``classifier.*`` copies of the head when it is the standard one, so plain
    ``EsmForSequenceClassification`` loads the repository without remote code (regression:
    the label scaling is folded into the output layer)."""
    if not is_standard_head(model.arch, model.esm.config.hidden_size):
        return {}
    dense, out = model.head[1], model.head[4]
    weight, bias = out.weight.detach().clone(), out.bias.detach().clone()
    if model.info.task == "regression":
        weight, bias = weight * model.info.target_std, bias * model.info.target_std + \
            model.info.target_mean
    return {"classifier.dense.weight": dense.weight.detach().clone(),
            "classifier.dense.bias": dense.bias.detach().clone(),
            "classifier.out_proj.weight": weight, "classifier.out_proj.bias": bias}


def load_model(directory: str | Path) -> tuple[SequencePredictor, object]:
    """Load an exported model directory (never unpickles: safetensors only)."""
    directory = Path(directory)
    if not (directory / "config.json").is_file() or not (directory / WEIGHTS).is_file():
        raise FileNotFoundError(f"{directory} is not an ESM-NAS model directory (needs "
                                f"config.json and {WEIGHTS}).")
    raw = json.loads((directory / "config.json").read_text())
    meta = raw.pop("esm_nas", None)
    if meta is None:
        raise ValueError(f"{directory}/config.json has no 'esm_nas' block: not a model exported "
                         "by ESM-NAS Studio.")
    config = EsmConfig.from_dict(raw)
    arch = Architecture.from_dict(meta["architecture"])
    info = TaskInfo(meta["task"], meta["label_names"], meta["target_mean"], meta["target_std"])
    backbone = EsmModel(config, add_pooling_layer=False)
    backbone.contact_head = None
    model = SequencePredictor(backbone, arch, info)
    state = load_file(str(directory / WEIGHTS))
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{directory}: weights do not match the config (missing "
                         f"{result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}).")
    model.eval()
    return model, EsmTokenizer.from_pretrained(directory)


def count_parameters(model: nn.Module) -> int:
    """Parameters of the deployed model (LoRA counted as merged, i.e. not at all)."""
    return sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n)
