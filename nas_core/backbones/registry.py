"""The ESM-2 checkpoints the app knows: names, shapes and exact parameter counts, and how a
name or a local directory resolves to one. Reads ``config.json`` only: no torch here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from nas_core.common.records import Record

ESM2_VOCAB = (
    "<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P",
    "K", "Q", "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>",
    "<mask>",
)


# backbones pretrained here and shipped with the app (assets/backbones/): the default where no
# ESM-2 checkpoint can be had
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "assets" / "backbones"
UNTRAINED_FLAG = "esm_nas_untrained"
PRETRAINED_FLAG = "esm_nas_pretrained"  # config.json of a backbone pretrained by the app


@dataclass(frozen=True)
class Pretraining(Record):
    """What a backbone pretrained by the app learnt from (its config's lineage record)."""

    corpus: str
    corpus_fingerprint: str
    proteins: int  # training proteins
    validation_proteins: int  # held out by homology (or at random: ``holdout``)
    residues: int
    tokens_seen: int
    steps: int
    start: str = field(metadata={"key": "from"})  # "random L,W,H,F" or the backbone continued
    validation_perplexity: float = 0.0  # every selected residue masked
    unigram_perplexity: float = 0.0  # amino-acid frequencies alone, same positions
    holdout: str = "homology"  # "random" when the corpus was one family

    @property
    def words(self) -> str:
        start = "random weights" if self.start.startswith("random") else self.start
        return (f"pretrained here from {start} on {human_count(self.residues)} residues of "
                f"{self.corpus} ({human_count(self.tokens_seen)} tokens; held-out perplexity "
                f"{self.validation_perplexity:.2f}, amino-acid frequencies "
                f"{self.unigram_perplexity:.2f}); a stand-in for ESM-2, not a substitute")


@dataclass(frozen=True)
class BackboneSpec:
    """What the app needs to know about a checkpoint before loading it."""

    name: str  # short name shown to users
    source: str  # hub id or local directory
    layers: int
    hidden: int
    heads: int
    intermediate: int
    untrained: bool = False
    # a backbone the app pretrained (or taught a user's proteins): what it learnt from
    lineage: Pretraining | None = field(default=None, compare=False)

    @property
    def n_parameters(self) -> int:
        return count_parameters(self.layers, self.hidden, self.intermediate, self.heads)

    def parameters_at_depth(self, depth: int) -> int:
        return count_parameters(depth, self.hidden, self.intermediate, self.heads)

    def gpu_memory_gb(self, depth: int | None = None, *, finetune: bool = False) -> float:
        """Rough need: bf16 weights (+ fp32 Adam state when fine-tuning) + activations."""
        params = self.parameters_at_depth(depth or self.layers)
        per_param = 16 if finetune else 2
        return round(params * per_param / 1e9 + 1.0 + 0.002 * self.hidden * (depth or
                                                                            self.layers) / 10, 1)

    @property
    def label(self) -> str:
        size = human_count(self.n_parameters)
        tag = " — untrained demo (random weights: a negative control)" if self.untrained \
            else f" — {self.learnt}" if self.lineage else ""
        return f"{self.name} ({self.layers} layers, {size} parameters){tag}"

    @property
    def learnt(self) -> str:
        """What a backbone made here learnt from, in words ('' for ESM-2's own)."""
        return self.lineage.words if self.lineage else ""


def human_count(n: int) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}".replace(".0", "")
    return str(n)


def count_parameters(layers: int, hidden: int, intermediate: int, heads: int,
                     vocab: int = len(ESM2_VOCAB)) -> int:
    """Exact parameter count of an ``EsmModel`` without pooler (ESM-2 layout, rotary)."""
    h, i = hidden, intermediate
    per_layer = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h
    contact = layers * heads + 1
    return vocab * h + layers * per_layer + 2 * h + contact


REGISTRY: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec("esm2_t6_8M", "facebook/esm2_t6_8M_UR50D", 6, 320, 20, 1280),
        BackboneSpec("esm2_t12_35M", "facebook/esm2_t12_35M_UR50D", 12, 480, 20, 1920),
        BackboneSpec("esm2_t30_150M", "facebook/esm2_t30_150M_UR50D", 30, 640, 20, 2560),
        BackboneSpec("esm2_t33_650M", "facebook/esm2_t33_650M_UR50D", 33, 1280, 20, 5120),
        BackboneSpec("esm2_t36_3B", "facebook/esm2_t36_3B_UR50D", 36, 2560, 40, 10240),
    )
}


class BackboneUnavailable(RuntimeError):
    """The checkpoint cannot be loaded; the message says why and what to do."""


def resolve(name_or_path: str) -> BackboneSpec:
    """A registry short name, a hub id of the registry, or a local checkpoint directory."""
    if name_or_path in REGISTRY:
        return REGISTRY[name_or_path]
    for spec in REGISTRY.values():
        if spec.source == name_or_path:
            return spec
    path = Path(name_or_path).expanduser()
    if (path / "config.json").is_file():
        cfg = json.loads((path / "config.json").read_text())
        if cfg.get("model_type") != "esm":
            raise BackboneUnavailable(f"{path} is a '{cfg.get('model_type')}' checkpoint, not "
                                      "ESM: choose an ESM-2 checkpoint directory.")
        return BackboneSpec(
            name=path.name, source=str(path.resolve()), layers=cfg["num_hidden_layers"],
            hidden=cfg["hidden_size"], heads=cfg["num_attention_heads"],
            intermediate=cfg["intermediate_size"], untrained=bool(cfg.get(UNTRAINED_FLAG)),
            lineage=Pretraining.from_dict(cfg[PRETRAINED_FLAG]) if cfg.get(PRETRAINED_FLAG)
            else None,
        )
    if path.exists():
        raise BackboneUnavailable(f"{path} has no config.json: it is not a transformers "
                                  "checkpoint directory.")
    if "/" in name_or_path and not name_or_path.startswith((".", "/", "~")):
        raise BackboneUnavailable(
            f"'{name_or_path}' is not in the ESM-2 registry ({', '.join(REGISTRY)}). To use "
            "another ESM checkpoint, download it and pass its local directory.")
    raise BackboneUnavailable(f"unknown backbone '{name_or_path}': use one of "
                              f"{', '.join(REGISTRY)} or a local checkpoint directory.")


def fits(spec: BackboneSpec, gpu_memory_gb: float | None) -> bool:
    """Whether the backbone can at least be run frozen on a GPU with that much memory."""
    return gpu_memory_gb is None or spec.gpu_memory_gb() <= gpu_memory_gb


def shipped_backbones() -> list[Path]:
    """The backbones pretrained here and shipped in ``assets/backbones/``."""
    if not SHIPPED_DIR.is_dir():
        return []
    return sorted(p for p in SHIPPED_DIR.iterdir() if (p / "config.json").is_file())
