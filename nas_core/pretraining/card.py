"""The model card of a pretrained backbone: what it learnt from, how long, the held-out
perplexity beside amino-acid frequencies alone, the recipe and the curve."""

from __future__ import annotations

from pathlib import Path

import yaml

from nas_core.backbones.registry import Pretraining
from nas_core.common.text import md_text
from nas_core.pretraining.config import PretrainConfig


def write_card(out_dir: Path, config: PretrainConfig, lineage: Pretraining, history,
               *, credit: str = "", seconds: float = 0.0) -> Path:
    meta = {"library_name": "transformers", "pipeline_tag": "fill-mask",
            "tags": ["protein", "esm2", "esm", "biology", "masked-language-model",
                     "esm-nas-studio"]}
    valid = history.valid
    first, last = valid[0], valid[-1]
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).strip(), "---", "",
             f"# {out_dir.name}", "",
             "An ESM-2-shaped protein language model pretrained by ESM-NAS Studio with ESM-2's "
             "masked-language-model recipe. It is a small stand-in trained on far less data "
             "than ESM-2 (UniRef, billions of tokens): use ESM-2's own weights where they can "
             "be had.", "",
             "## What it learnt from", "",
             f"- Corpus {md_text(lineage.corpus)} (fingerprint "
             f"`{lineage.corpus_fingerprint[:16]}`): {lineage.proteins:,} training "
             f"proteins, {lineage.residues:,} residues; {lineage.validation_proteins:,} "
             + (f"proteins held out by homology (no training protein at least "
                f"{config.identity:.0%} identical to one of them, MMseqs2)."
                if lineage.holdout == "homology" else
                "proteins held out at random: the corpus is one family, so the held-out "
                "perplexity measures how well the model knows this family, not unseen ones."),
             f"- Started from {md_text(lineage.start)}; {lineage.tokens_seen:,} "
             f"tokens in {lineage.steps:,} optimiser steps"
             + (f" ({seconds / 3600:.2f} h of training)." if seconds else "."),
             *([f"- {md_text(credit)}"] if credit else []), "",
             "## Held-out perplexity", "",
             "Every selected residue of the held-out proteins masked (none left as it was, "
             "which a model could copy), beside the perplexity of amino-acid frequencies alone "
             "on the same positions: a model that learnt nothing scores the second number.",
             "", "| tokens seen | perplexity | amino-acid frequencies | ratio |",
             "|---|---|---|---|"]
    for row in valid:
        lines.append(f"| {int(row['tokens']):,} | {row['model']:.3f} | {row['unigram']:.3f} | "
                     f"{row['model'] / row['unigram']:.3f} |")
    lines += ["", f"From {first['model']:.2f} at the start to **{last['model']:.2f}** "
              f"({last['model'] / last['unigram']:.2f} of the frequencies' "
              f"{last['unigram']:.2f}).", "",
              "## Recipe", "",
              f"{config.select:.0%} of the residues selected (80% masked, 10% a random amino "
              "acid, 10% unchanged), ESM-2's token dropout, random crops of "
              f"{config.max_length} residues, batches of about {config.batch_tokens:,} tokens, "
              f"AdamW (peak learning rate {config.lr:g}, betas 0.9/0.98, weight decay "
              f"{config.weight_decay:g}), linear warm-up and decay to a tenth, gradient "
              f"clipping at {config.clip:g}, seed {config.seed}.", "",
              "## How to use", "", "```python",
              "from transformers import AutoTokenizer, EsmForMaskedLM", "",
              f"model = EsmForMaskedLM.from_pretrained({str(out_dir.name)!r})",
              f"tokenizer = AutoTokenizer.from_pretrained({str(out_dir.name)!r})", "```", "",
              "In ESM-NAS Studio, choose it as the backbone of a search (its folder, or its "
              "name in the backbone list).", ""]
    path = out_dir / "README.md"
    path.write_text("\n".join(lines))
    return path
