"""One candidate architecture: every choice needed to build and train it, in plain words too."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from nas_core.backbones.registry import REGISTRY, human_count, resolve

ADAPTATIONS = ("frozen", "lora", "dora", "ia3", "partial", "full")
LORA_LIKE = ("lora", "dora")  # rank, alpha, dropout and targets apply
ADAPTATION_WORDS = {
    "frozen": "frozen", "lora": "LoRA", "dora": "DoRA (weight-decomposed LoRA)",
    "ia3": "IA\u00b3 (learned rescaling of keys, values and feed-forward activations)",
    "partial": "top layers fine-tuned", "full": "all kept layers fine-tuned"}
# shares of attention heads / feed-forward width a layer may keep (1.0: all)
KEPT_SHARES = (1.0, 0.75, 0.5, 0.25)
POOLINGS = ("mean", "cls", "attention")
# per-residue heads: "dense" reads each residue alone (linear, or an MLP with head_layers);
# "conv" also reads its neighbours (a 1-D convolution over the sequence, as SETH and the
# ProtTrans secondary-structure notebooks do)
RESIDUE_HEADS = ("dense", "conv")
CONV_KERNEL = 7  # residues a convolutional head sees at once (3 either side)
ACTIVATIONS = ("gelu", "relu", "tanh")
# pairs of proteins: a shared (siamese) encoder pools each partner, then the head reads
# [a + b, |a - b|, a * b] (symmetric: A-B scores as B-A) or [a, b] (order-sensitive); or a
# cross-encoder reads both sequences joined by PAIR_LINKER, so attention runs between them
PAIR_HEADS = ("symmetric", "concat", "cross")
# 25 glycines, as ESMFold joins the chains of a complex (Lin et al., Science 2023): flexible,
# no structure of its own, and residues ESM-2 has seen (a special token between the chains
# would be unlike anything in its pretraining); the joined input is as long as both partners
# and the linker together
PAIR_LINKER = "G" * 25
LORA_TARGETS = ("query,value", "query,key,value,dense")


@dataclass(frozen=True)
class Architecture:
    """One point of the search space: everything needed to build and train a candidate."""

    backbone: str
    n_layers: int
    adaptation: str = "frozen"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: str = "query,value"
    finetune_layers: int = 1
    pooling: str = "mean"
    head_layers: int = 1
    head_width: int = 128
    activation: str = "gelu"
    dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 16
    max_epochs: int = 10
    contrastive_weight: float = 0.0
    temperature: float = 0.1
    heads_kept: float = 1.0  # share of each layer's attention heads kept after pruning
    ffn_kept: float = 1.0  # share of each layer's feed-forward width kept after pruning
    residue_head: str = "dense"  # per-residue tasks: dense or conv (RESIDUE_HEADS)
    class_weighted: bool = False  # classes weighted by inverse frequency in the loss
    pair_head: str = "symmetric"  # pairs of proteins: PAIR_HEADS

    @property
    def compacted(self) -> bool:
        """Heads or feed-forward width are pruned from the trained model, then recovered by
        distillation."""
        return self.heads_kept < 1.0 or self.ffn_kept < 1.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Architecture:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def siamese(self) -> bool:
        """A pair model that encodes each partner alone (not a cross-encoder)."""
        return self.pair_head != "cross"

    def describe(self, per_residue: bool = False, pairs: bool = False) -> str:
        """The architecture in plain words (``per_residue``: a head on every residue, no
        pooling; ``pairs``: how the two partners meet)."""
        spec = resolve(self.backbone)
        size = spec.name.split("_")[-1] if spec.name in REGISTRY else human_count(
            spec.n_parameters)
        base = (f"{spec.name} (untrained demo)" if spec.untrained else
                f"{spec.name} (pretrained here)" if spec.lineage else f"ESM-2 {size}")
        depth = (f"{base} cut to {self.n_layers} of {spec.layers} layers"
                 if self.n_layers < spec.layers else f"{base}, all {spec.layers} layers")
        if self.adaptation == "frozen":
            adapt = "frozen"
        elif self.adaptation in LORA_LIKE:
            adapt = (f"{'LoRA' if self.adaptation == 'lora' else 'DoRA'} rank {self.lora_rank} "
                     f"on {self.lora_targets.replace(',', '/')}")
        elif self.adaptation == "partial":
            adapt = f"top {min(self.finetune_layers, self.n_layers)} layer(s) fine-tuned"
        else:
            adapt = ADAPTATION_WORDS[self.adaptation]
        head = ("a linear head" if self.head_layers == 0 else
                f"{'one' if self.head_layers == 1 else self.head_layers} hidden layer"
                f"{'s' if self.head_layers > 1 else ''} of {self.head_width} ({self.activation})")
        if per_residue:
            head = (f"a convolutional head over {CONV_KERNEL} neighbouring residues "
                    f"({self.head_width} channels, {self.activation})"
                    if self.residue_head == "conv" else head.replace("head", "head per residue"))
            parts = [depth, adapt, head]
        else:
            parts = [depth, adapt, f"{self.pooling} pooling", head]
        if pairs:
            parts.insert(0, _PAIR_WORDS[self.pair_head])
        parts.append(f"learning rate {self.lr:.1e}")
        if self.class_weighted:
            parts.append("classes weighted by inverse frequency")
        if self.compacted:
            parts.append(f"then pruned to {self.heads_kept:.0%} of the attention heads and "
                         f"{self.ffn_kept:.0%} of the feed-forward width per layer and "
                         "recovered by distillation")
        if self.contrastive_weight > 0:
            parts.append(f"contrastive loss weight {self.contrastive_weight:.2f}")
        return ", ".join(parts)


_PAIR_WORDS = {
    "symmetric": "shared encoder per partner, combined symmetrically ([a+b, |a-b|, a*b])",
    "concat": "shared encoder per partner, combined in order ([a, b])",
    "cross": f"cross-encoder reading both partners joined by {len(PAIR_LINKER)} glycines "
             "(order-sensitive)",
}
