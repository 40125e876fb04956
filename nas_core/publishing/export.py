"""Exported model directories: plain ``transformers``-style folders.

``config.json`` (the ESM config plus an ``esm_nas`` block with the task, label names and every
architecture choice), ``model.safetensors`` (LoRA merged, no pickles), the tokenizer files and the
bundled modelling file, so the model loads with only torch and transformers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from nas_core.backbones.loading import EsmConfig, EsmModel, EsmTokenizer
from nas_core.common.tasks import Task
from nas_core.modeling import shapes
from nas_core.modeling.architecture import Architecture
from nas_core.modeling.modules import SequencePredictor, TaskInfo
from nas_core.modeling.pruning import Compaction

REMOTE_MODULE = "modeling_esm_nas"
REMOTE_CLASS = "EsmNasForSequenceClassification"
REMOTE_TOKEN_CLASS = "EsmNasForTokenClassification"  # per-residue models
ENSEMBLE_CLASS = "EsmNasEnsembleForSequenceClassification"
ENSEMBLE_TOKEN_CLASS = "EsmNasEnsembleForTokenClassification"
REMOTE_PAIR_CLASS = "EsmNasForPairClassification"  # pairs of proteins
ENSEMBLE_PAIR_CLASS = "EsmNasEnsembleForPairClassification"
WEIGHTS = "model.safetensors"
SHAPES_MODULE = "esm_nas_shapes"  # nas_core/modeling/shapes.py, copied beside the modelling file


# -- exported, self-contained model directories -------------------------------------------
TRAINING_SEQUENCES = "training_sequences.fasta"
LABEL_KEY = "label="  # in a training sequence's header: its measured label (per sequence)


def read_training_set(path: Path) -> tuple[list[str], dict[str, str]]:
    """The training sequences of an exported model, and the label measured for each one whose
    header carries it (sequence -> label)."""
    sequences: list[str] = []
    labels: dict[str, str] = {}
    header = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith(">"):
            header = line
        elif line:
            sequences.append(line)
            if LABEL_KEY in header:
                labels.setdefault(line, header.split(LABEL_KEY, 1)[1])
    return sequences, labels


def export_model(model: SequencePredictor, tokenizer, directory: str | Path, *,
                 extra: dict | None = None, train_sequences: list[str] | None = None,
                 train_labels: list[str] | None = None) -> Path:
    """Write a self-contained model directory: LoRA merged, safetensors only. With
    ``train_sequences``, also a FASTA of them (with ``train_labels``, each one's label in its
    header), so predictions can say how far each new sequence is from what the model has seen
    and give the measured label of one it was trained on (left out when publishing, unless
    asked)."""
    config, state = model_files(model, extra)
    return _write(Path(directory), config, state, tokenizer, train_sequences, train_labels)


def export_ensemble(models: list[SequencePredictor], tokenizer, directory: str | Path, *,
                    extra: dict | None = None, member_extra: list[dict] | None = None,
                    train_sequences: list[str] | None = None,
                    train_labels: list[str] | None = None, temperature: float = 1.0) -> Path:
    """One directory for several models whose calibrated probabilities (or values) are
    averaged: each member's config under ``esm_nas["ensemble"]["members"]``, its weights under
    ``members.N.`` in one safetensors file. The bundled modelling file loads it with only torch
    and transformers (``EsmNasEnsemble...``), and its output carries the members' spread.
    ``temperature`` (classification) rescales the averaged probabilities: softmax(log mean /
    T)."""
    if len(models) < 2:
        raise ValueError("an ensemble needs at least two models.")
    configs, state = [], {}
    for i, model in enumerate(models):
        config, weights = model_files(model, (member_extra or [{}] * len(models))[i])
        configs.append(config)
        state.update({f"members.{i}.{k}": v for k, v in weights.items()
                      if not k.startswith("classifier.")})  # no plain-head copies inside
    first = models[0]
    config = {k: v for k, v in configs[0].items() if k != "esm_nas"}
    kind = (ENSEMBLE_TOKEN_CLASS if first.info.per_residue else
            ENSEMBLE_PAIR_CLASS if first.info.task.per_pair else ENSEMBLE_CLASS)
    auto = ("AutoModelForTokenClassification" if first.info.per_residue
            else "AutoModelForSequenceClassification")
    config["architectures"] = [kind]
    config["auto_map"] = {auto: f"{REMOTE_MODULE}.{kind}"}
    config["esm_nas"] = {**first.info.to_dict(), "temperature": float(temperature),
                         "ensemble": {"members": configs}, **(extra or {})}
    config["esm_nas"].pop("class_weights", None)
    return _write(Path(directory), config, state, tokenizer, train_sequences, train_labels)


def model_files(model: SequencePredictor, extra: dict | None = None
                ) -> tuple[dict, dict[str, torch.Tensor]]:
    """The config (ESM's, plus the ``esm_nas`` block) and the weights of one exported model."""
    backbone: Any = model.esm
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
    compaction = model.compaction
    if compaction is not None:
        config["esm_nas"]["compaction"] = compaction.to_dict()
        if compaction.uniform_ffn is not None:  # plain transformers reads this one itself
            config["intermediate_size"] = compaction.uniform_ffn
    names = model.info.label_names or ["value"]
    config["id2label"] = dict(enumerate(names))
    config["label2id"] = {n: i for i, n in enumerate(names)}
    config["problem_type"] = ("regression" if model.info.regression else
                              "single_label_classification")
    # loadable anywhere with only torch + transformers, through the bundled modelling file
    if model.info.task.per_pair:  # the Auto class loads the pair model (remote code)
        config["architectures"] = [REMOTE_PAIR_CLASS]
        config["auto_map"] = {"AutoModelForSequenceClassification":
                              f"{REMOTE_MODULE}.{REMOTE_PAIR_CLASS}",
                              "AutoModel": f"{REMOTE_MODULE}.{REMOTE_PAIR_CLASS}"}
    elif model.info.per_residue:
        config["architectures"] = [REMOTE_TOKEN_CLASS]
        config["auto_map"] = {"AutoModelForTokenClassification":
                              f"{REMOTE_MODULE}.{REMOTE_TOKEN_CLASS}"}
    else:
        config["architectures"] = [REMOTE_CLASS]
        config["auto_map"] = {"AutoModelForSequenceClassification":
                              f"{REMOTE_MODULE}.{REMOTE_CLASS}"}
    state = {f"esm.{k}": v for k, v in backbone.state_dict().items()
             if not k.startswith("contact_head.")}
    state.update({k: v for k, v in model.state_dict().items() if not k.startswith("esm.")})
    state.update(standard_head_weights(model))
    return config, {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def _write(directory: Path, config: dict, state: dict[str, torch.Tensor], tokenizer,
           train_sequences: list[str] | None, train_labels: list[str] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    save_file(state, str(directory / WEIGHTS), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(config, indent=2, default=str))
    tokenizer.save_pretrained(directory)
    shutil.copy(Path(__file__).parent / "hf_export" / f"{REMOTE_MODULE}.py", directory)
    shutil.copy(shapes.__file__, directory / f"{SHAPES_MODULE}.py")
    if train_sequences:
        with open(directory / TRAINING_SEQUENCES, "w") as f:
            for i, seq in enumerate(train_sequences):
                label = f" {LABEL_KEY}{' '.join(train_labels[i].split())}" if train_labels else ""
                f.write(f">train_{i}{label}\n{seq}\n")
    return directory


def is_standard_head(arch: Architecture, hidden: int, per_residue: bool = False) -> bool:
    """Exactly transformers' head: EsmClassificationHead (CLS token, dense(hidden) + tanh,
    out) or, per residue, EsmForTokenClassification's linear classifier on every token."""
    if per_residue:
        return arch.residue_head == "dense" and arch.head_layers == 0
    return (arch.pooling == "cls" and arch.head_layers == 1 and arch.head_width == hidden
            and arch.activation == "tanh")


def plain_shapes(model: SequencePredictor) -> bool:
    """Whether plain ``EsmModel`` can hold the backbone: all heads kept (transformers derives
    the head size from the head count) and one feed-forward width for every layer."""
    compaction = model.compaction
    return compaction is None or (not compaction.heads_pruned
                                  and compaction.uniform_ffn is not None)


def standard_head_weights(model: SequencePredictor) -> dict[str, torch.Tensor]:
    """``classifier.*`` copies of the head when it is the standard one, so plain
    ``EsmForSequenceClassification`` loads the repository without remote code (regression:
    the label scaling is folded into the output layer)."""
    config: Any = model.esm.config
    head: Any = model.head
    info = model.info
    if not is_standard_head(model.arch, config.hidden_size, info.per_residue) or \
            not plain_shapes(model) or info.task.per_pair:  # no plain class reads two proteins
        return {}
    if info.per_residue:  # EsmForTokenClassification: dropout, classifier
        linear: Any = head[1]
        weight, bias = linear.weight.detach().clone(), linear.bias.detach().clone()
        if info.regression:
            weight, bias = weight * info.target_std, bias * info.target_std + info.target_mean
        else:  # calibrated: the temperature divides the logits
            weight, bias = weight / info.temperature, bias / info.temperature
        return {"classifier.weight": weight, "classifier.bias": bias}
    dense: Any = head[1]
    out: Any = head[4]
    weight, bias = out.weight.detach().clone(), out.bias.detach().clone()
    if model.info.task.label_kind == Task.REGRESSION:
        weight, bias = weight * model.info.target_std, bias * model.info.target_std + \
            model.info.target_mean
    else:  # calibrated: the temperature divides the logits
        weight, bias = weight / model.info.temperature, bias / model.info.temperature
    return {"classifier.dense.weight": dense.weight.detach().clone(),
            "classifier.dense.bias": dense.bias.detach().clone(),
            "classifier.out_proj.weight": weight, "classifier.out_proj.bias": bias}


def read_config(directory: str | Path) -> dict:
    """An exported model directory's config.json, checked to be one of ours."""
    directory = Path(directory)
    if not (directory / "config.json").is_file() or not (directory / WEIGHTS).is_file():
        raise FileNotFoundError(f"{directory} is not an ESM-NAS model directory (needs "
                                f"config.json and {WEIGHTS}).")
    raw = json.loads((directory / "config.json").read_text())
    if "esm_nas" not in raw:
        raise ValueError(f"{directory}/config.json has no 'esm_nas' block: not a model exported "
                         "by ESM-NAS Studio.")
    return raw


def load_model(directory: str | Path) -> tuple[SequencePredictor, EsmTokenizer]:
    """Load an exported model directory (never unpickles: safetensors only)."""
    models, tokenizer = load_models(directory)
    if len(models) > 1:
        raise ValueError(f"{directory} is an ensemble of {len(models)} models: load it with "
                         "load_models.")
    return models[0], tokenizer


def load_models(directory: str | Path) -> tuple[list[SequencePredictor], EsmTokenizer]:
    """The model of an exported directory, or each member of an exported ensemble."""
    directory = Path(directory)
    raw = read_config(directory)
    state = load_file(str(directory / WEIGHTS))
    members = raw["esm_nas"].get("ensemble", {}).get("members")
    if not members:
        models = [_from_config(raw, state, directory)]
    else:
        models = [_from_config(member, {k.removeprefix(f"members.{i}."): v
                                        for k, v in state.items()
                                        if k.startswith(f"members.{i}.")}, directory)
                  for i, member in enumerate(members)]
    return models, EsmTokenizer.from_pretrained(directory)


def _from_config(raw: dict, state: dict[str, torch.Tensor], directory: Path) -> SequencePredictor:
    raw = dict(raw)
    meta = raw.pop("esm_nas")
    config = EsmConfig.from_dict(raw)
    arch = Architecture.from_dict(meta["architecture"])
    info = TaskInfo(meta["task"], meta["label_names"], meta["target_mean"], meta["target_std"],
                    temperature=float(meta.get("temperature", 1.0)))
    backbone: Any = EsmModel(config, add_pooling_layer=False)
    backbone.contact_head = None
    compaction = Compaction.from_dict(meta.get("compaction"))
    if compaction is not None:
        shapes.reshape_encoder(backbone, compaction.heads, compaction.ffn)
    model = SequencePredictor(backbone, arch, info)
    model.compaction = compaction
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{directory}: weights do not match the config (missing "
                         f"{result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}).")
    model.eval()
    return model
