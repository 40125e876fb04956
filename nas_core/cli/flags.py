"""What the command line is made of: exit codes and flags derived from the configuration
dataclasses (their help, defaults and choices). Light: building the parser imports no pandas,
torch or transformers, so ``esm-nas --help`` answers at once."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from nas_core.data.options import IngestOptions, SplitOptions, parse_class_names

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
_TYPES = {"int": int, "float": float, "str": str}


def _field(cls: type, name: str) -> dataclasses.Field:
    return {f.name: f for f in dataclasses.fields(cls)}[name]


def field_metadata(cls: type, name: str) -> dict:
    return dict(_field(cls, name).metadata)


def add_field(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type,
              name: str, flag: str | None = None, **overrides: Any) -> None:
    """A flag for the dataclass field ``cls.name``: its help, default and choices come from the
    field (``metadata={"help": ..., "choices": ...}``), so the CLI never restates them."""
    spec = _field(cls, name)
    flag = flag or "--" + name.replace("_", "-")
    meta = spec.metadata
    # argparse reads help as a %-format: a field's "80% masked" would break --help
    kwargs: dict[str, Any] = {"dest": name, "help": meta.get("help", "").replace("%", "%%")}
    if spec.default is not dataclasses.MISSING:
        kwargs["default"] = spec.default
    annotation = str(spec.type)
    if annotation == "bool":
        kwargs["action"] = "store_false" if spec.default else "store_true"
    else:
        base = annotation.split("|")[0].strip()
        kwargs["type"] = _TYPES.get(base, str)
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
    kwargs.update(overrides)
    flags = ("store_true", "store_false", "append")
    if kwargs.get("default") is not None and kwargs.get("action") not in flags:
        kwargs["help"] += f" (default: {kwargs['default']})"
    parser.add_argument(flag, **kwargs)


def add_data_args(p: argparse.ArgumentParser) -> None:
    """The dataset file, how to read and check it (:class:`IngestOptions`) and how to split
    it (:class:`SplitOptions`)."""
    p.add_argument("data", help="CSV, TSV, Excel (.xlsx) or FASTA file (optionally .gz); with "
                   "--labels, the sequence FASTA of the FLIP / biotrainer layout")
    p.add_argument("--labels", default=None, metavar="FASTA",
                   help="per-residue labels in the FLIP / biotrainer layout: a FASTA of label "
                   "strings with the IDs of DATA's records and 'SET=train|test "
                   "VALIDATION=True|False' in each header")
    p.add_argument("--mask", default=None, metavar="FASTA",
                   help="with --labels: a FASTA of 0/1 strings, 0 where a residue's label is "
                   "to be ignored")
    add_proteins_arg(p, "DATA", "protein_1 protein_2 label")
    add_field(p, IngestOptions, "seq_col")
    add_field(p, IngestOptions, "label_col")
    add_field(p, IngestOptions, "task")
    fixes = field_metadata(IngestOptions, "fixes")
    add_field(p, IngestOptions, "fixes", "--fix", action="append", default=[], metavar="FIX",
              help=f"{fixes['help']} Repeatable; one of {', '.join(fixes['choices'])}.")
    add_field(p, IngestOptions, "class_names", type=_class_names, default=None,
              metavar="CODE=NAME,...")
    add_field(p, SplitOptions, "method", "--split")
    add_field(p, SplitOptions, "pairs", "--pair-split", dest="pair_split")
    add_field(p, SplitOptions, "identity")
    add_field(p, SplitOptions, "seed", "--split-seed", dest="split_seed")


def add_proteins_arg(p: argparse.ArgumentParser, listing: str, columns: str) -> None:
    """``--proteins FASTA``: the pairs-file + FASTA layout, where ``listing`` (the positional
    argument's name) lists pairs by protein ID."""
    p.add_argument("--proteins", default=None, metavar="FASTA",
                   help=f"protein pairs listed by ID: {listing} is the pairs file ({columns}; "
                   "tab, comma or space separated, a header optional) and this FASTA holds "
                   "the proteins' sequences (D-SCRIPT's layout). A table with two sequence "
                   "columns (sequence_1, sequence_2) needs no --proteins.")


def _class_names(text: str) -> tuple[tuple[str, str], ...]:
    try:
        return parse_class_names(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
