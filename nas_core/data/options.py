"""How a labelled dataset is read, checked and split: the options the Data page, the CLI
flags and a stored dataset share. Kept apart from the reading code (pandas, scikit-learn), so
that building the command line costs no heavy import."""

from __future__ import annotations

from dataclasses import dataclass, field

from nas_core.common.tasks import Task

ESM2_MAX_RESIDUES = 1022  # the longest sequence ESM-2 reads (its 1024 positions less two)
METHODS = ("homology", "random", "column")
# pairs: which proteins a test pair may share with training
PAIR_SPLITS = ("both_unseen", "one_unseen", "random")

FIXES: dict[str, str] = {
    "drop_conflicts": "Drop every copy of the sequences that carry conflicting labels",
    "drop_invalid": "Drop the rows whose sequence has invalid characters",
    "drop_empty": "Drop the rows with an empty sequence",
    "drop_unlabelled": "Drop the rows with a missing or unusable label",
    "drop_rare_classes": "Drop the classes with too few examples (per residue: mark their "
                         "residues as unlabelled)",
    "drop_bad_split": "Drop the rows with an unknown split value",
    "drop_nucleotides": "Drop the rows that look like DNA or RNA",
    "mean_replicates": "Keep the mean of each sequence's replicate measurements (per "
                       "residue: position by position)",
    "drop_missing_proteins": "Drop the pairs whose protein is not in the protein file",
    "read_numbers": "Read the labels as measurements: a decimal comma as a point (2,5 is "
                    "2.5), a percentage as its number (30% is 30)",
}


@dataclass(frozen=True)
class IngestOptions:
    """How to read and check a labelled dataset (validated once, then trusted)."""

    seq_col: str | None = field(default=None, metadata={
        "help": "Column holding the sequences; detected from names like 'sequence' or 'seq'."})
    label_col: str | None = field(default=None, metadata={
        "help": "Column holding the measured label; detected from names like 'label' or 'y'."})
    task: str = field(default="auto", metadata={
        "help": "binary, multiclass or regression (one label per sequence), "
        "residue_classification or residue_regression (one label per residue: a string as long "
        "as the sequence, or that many numbers), pair_binary, pair_multiclass or "
        "pair_regression (one label per pair of proteins); 'auto' infers it from the labels "
        "(a file of pairs gives a pair task).",
        "choices": ("auto", *Task)})
    max_length: int = field(default=ESM2_MAX_RESIDUES, metadata={
        "help": "Longer sequences are truncated to this many residues (ESM-2 reads 1022)."})
    min_class_size: int = field(default=5, metadata={
        "help": "A class needs at least this many sequences to be split and learned."})
    fixes: frozenset[str] = field(default=frozenset(), metadata={
        "help": "Named fixes to apply, e.g. drop_conflicts.", "choices": tuple(sorted(FIXES))})
    class_names: tuple[tuple[str, str], ...] = field(default=(), metadata={
        "help": "Words for classes coded as numbers or abbreviations, as the model, its card "
        "and predictions will call them: 0=unmodified,1=SUMOylated."})

    def __post_init__(self) -> None:
        if self.task not in ("auto", *Task):
            raise ValueError(f"task must be auto or one of {', '.join(Task)}, not "
                             f"'{self.task}'.")
        unknown = set(self.fixes) - set(FIXES)
        if unknown:
            raise ValueError(f"unknown fix {sorted(unknown)}; choose from {sorted(FIXES)}.")
        if self.max_length < 1:
            raise ValueError("max_length must be at least 1.")
        if self.min_class_size < 1:
            raise ValueError("min_class_size must be at least 1.")
        object.__setattr__(self, "fixes", frozenset(self.fixes))
        pairs = tuple((str(old).strip(), str(new).strip()) for old, new in self.class_names)
        olds, news = [o for o, _ in pairs], [n for _, n in pairs]
        if any(not o or not n for o, n in pairs):
            raise ValueError("class names: give each class as CODE=NAME, neither empty.")
        if len(set(olds)) < len(olds) or len(set(news)) < len(news):
            raise ValueError("class names: each class once, and no two classes with one name.")
        object.__setattr__(self, "class_names", pairs)



def parse_class_names(text: str) -> tuple[tuple[str, str], ...]:
    """``0=unmodified,1=SUMOylated`` -> pairs; ValueError naming the piece that is wrong."""
    pairs = []
    for piece in filter(None, (p.strip() for p in text.split(","))):
        code, sep, name = piece.partition("=")
        if not sep:
            raise ValueError(f"class names: '{piece}' is not CODE=NAME (e.g. 1=SUMOylated).")
        pairs.append((code.strip(), name.strip()))
    return tuple(pairs)



@dataclass(frozen=True)
class SplitOptions:
    method: str = field(default="homology", metadata={
        "help": "homology: whole clusters of similar sequences per split (recommended); "
        "random: stratified at random; column: the file's own split column, required.",
        "choices": METHODS})
    identity: float | None = field(default=None, metadata={
        "help": "Homology split: sequences at least this identical are kept together. Default "
        "0.3 for proteins, 0.5 for short peptides (median under 50 residues)."})
    valid_fraction: float = field(default=0.1, metadata={
        "help": "Share of sequences used to choose between architectures."})
    test_fraction: float = field(default=0.1, metadata={
        "help": "Share held out and used once, to report the final model's quality."})
    seed: int = field(default=0, metadata={"help": "Same seed, same split."})
    pairs: str = field(default="both_unseen", metadata={
        "help": "Pairs of proteins: both_unseen (default) keeps every test protein, and its "
        "homologs, out of training, so the score says how the model does on new proteins; "
        "one_unseen lets one partner of each test pair be a training protein; random splits "
        "the pairs (the same proteins in training and test: the score is inflated).",
        "choices": PAIR_SPLITS})

    def __post_init__(self) -> None:
        if self.pairs not in PAIR_SPLITS:
            raise ValueError(f"pair split must be one of {', '.join(PAIR_SPLITS)}, not "
                             f"'{self.pairs}'.")
        if self.method not in METHODS:
            raise ValueError(f"split method must be one of {', '.join(METHODS)}, not "
                             f"'{self.method}'.")
        if self.identity is not None and not 0.1 <= self.identity <= 1.0:
            raise ValueError(f"identity must be between 0.1 and 1.0, not {self.identity}.")
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 < value < 0.5:
                raise ValueError(f"{name} must be between 0 and 0.5, not {value}.")
        if self.valid_fraction + self.test_fraction >= 0.8:
            raise ValueError("valid_fraction + test_fraction must leave at least 20% to train.")
