"""Real labelled datasets shipped in ``assets/`` (with their source and licence).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[2] / "assets"


@dataclass(frozen=True)
class Example:
    key: str
    file: str
    title: str
    description: str
    licence: str
    labels: str | None = None  # FLIP layout: the label FASTA beside the sequence FASTA
    mask: str | None = None
    proteins: str | None = None  # pairs listed by ID: the proteins' FASTA

    @property
    def path(self) -> Path:
        return ASSETS / self.file

    @property
    def sources(self) -> dict:
        """Keyword arguments of ``import_dataset`` for the files beside the first."""
        return {k: ASSETS / v for k, v in (("labels", self.labels), ("mask", self.mask),
                                           ("proteins", self.proteins)) if v}


_MODLAMP = ("modlAMP 4.3.3 (BSD 3-Clause, ETH Zurich; Müller, Gabernet, Hiss & Schneider, "
            "Bioinformatics 2017), see assets/LICENSE.modlamp")


EXAMPLES: dict[str, Example] = {e.key: e for e in (
    Example("amp_vs_transmembrane", "amp_vs_transmembrane.csv",
            "Antimicrobial peptides vs. transmembrane helices (412 peptides)",
            "Binary: antimicrobial peptides (APD3) against transmembrane helices; 8-56 residues.",
            _MODLAMP),
    Example("anticancer_vs_random", "anticancer_vs_random.csv",
            "Anticancer peptides vs. scrambled (826 peptides)",
            "Binary: anticancer peptides (CancerPPD) against scrambled sequences; 8-28 residues.",
            _MODLAMP),
    Example("amp_vs_uniprot", "amp_vs_uniprot.csv",
            "Antimicrobial peptides vs. UniProt (5,200 peptides, with real duplicates)",
            "Binary: APD3 antimicrobial peptides against random UniProt fragments. Holds 22 "
            "sequences with conflicting labels: the app offers to drop them.", _MODLAMP),
    Example("gfp_fluorescence", "gfp_fluorescence.csv",
            "GFP fluorescence (500 avGFP variants, regression)",
            "Regression: log-fluorescence of avGFP variants (TAPE benchmark, Sarkisyan et al., "
            "Nature 2016); 237-238 residues.",
            "TAPE / plmsommelier 1.0.0 (MIT), see assets/LICENSE.plmsommelier"),
    Example("secondary_structure", "secondary_structure/sequences.fasta",
            "Secondary structure per residue (500 protein chains, FLIP)",
            "Per-residue classification: helix (H), strand (E) or coil (C) for every resolved "
            "residue, in the FLIP / biotrainer layout (sequences, labels with the split in the "
            "headers, and a mask); 22-400 residues.",
            "FLIP (Dallago et al. 2021) from NetSurfP-2.0, Academic Free License 3.0, see "
            "assets/LICENSE.flip", labels="secondary_structure/labels.fasta",
            mask="secondary_structure/mask.fasta"),
    Example("ecoli_pairs", "pairs/ecoli_pairs.tsv",
            "Protein-protein interactions in E. coli (22,000 pairs of 7,138 proteins)",
            "Pairs: does protein A interact with protein B? STRING physical interactions "
            "(2,000) against random pairs (20,000), in D-SCRIPT's layout (a pairs file and "
            "the proteins' FASTA). Split with both partners unseen by default; the real file "
            "lists some pairs twice and one pair both ways with two labels: the app says "
            "which and offers the fix.",
            "D-SCRIPT (Sledzieski et al., Cell Systems 2021; MIT) from STRING (CC BY 4.0), "
            "see assets/LICENSE.dscript", proteins="pairs/ecoli_proteins.fasta.gz"),
)}


DEFAULT_EXAMPLE = "amp_vs_transmembrane"
