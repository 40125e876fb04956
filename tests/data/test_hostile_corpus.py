"""Hostile inputs, rebuilt (issue 30): each file as a user, a spreadsheet or a careless script
might hand it over, and how each ends: refused as a whole with the reason, an error naming
the rows and the fix, or accepted with what was done. Never a traceback, never silently
wrong."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from nas_core.data.reading import DataFileError
from nas_core.data.validation import load_upload

RNG = np.random.default_rng(0)
AA = list("ACDEFGHIKLMNPQRSTVWY")


def peptides(n: int, low: int = 12, high: int = 40) -> list[str]:
    return ["".join(RNG.choice(AA, RNG.integers(low, high))) for _ in range(n)]


PEP = peptides(60)


def csv(rows, header="sequence,label", sep=",", eol="\n") -> bytes:
    return (header.replace(",", sep) + eol + eol.join(sep.join(r) for r in rows) + eol).encode()


def labelled(n=60, labels=("AMP", "TM")):
    return [(s, labels[i % len(labels)]) for i, s in enumerate(PEP[:n])]


def cases() -> dict[str, tuple[str, bytes]]:
    c: dict[str, tuple[str, bytes]] = {}
    good = labelled()
    c["empty file"] = ("empty.csv", b"")
    c["header only"] = ("header.csv", b"sequence,label\n")
    c["random bytes"] = ("noise.csv", RNG.bytes(4000))
    c["NUL bytes in a row"] = ("nul.csv", csv(good).replace(b"AMP", b"A\x00MP", 1))
    c["UTF-16 with BOM"] = ("utf16.csv", csv(good).decode().encode("utf-16"))
    c["UTF-8 BOM"] = ("bom.csv", b"\xef\xbb\xbf" + csv(good))
    c["semicolons"] = ("semi.csv", csv(good, sep=";"))
    c["tabs named .csv"] = ("tabs.csv", csv(good, sep="\t"))
    c["CRLF"] = ("crlf.csv", csv(good, eol="\r\n"))
    c["HTML page named .csv"] = ("page.csv", b"<!DOCTYPE html><html><body>Login</body></html>")
    c["JSON named .csv"] = ("data.csv", b'[{"sequence": "MKV", "label": 1}]')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello")
    c["zip named .xlsx"] = ("book.xlsx", buf.getvalue())
    c["lowercase sequences"] = ("lower.csv", csv([(s.lower(), y) for s, y in good]))
    c["stop codon star at the end"] = ("stars.csv", csv([(s + "*", y) for s, y in good]))
    c["gaps in sequences"] = ("gaps.csv", csv([(s[:5] + "--" + s[5:], y) for s, y in good]))
    c["spaces inside sequences"] = ("spaces.csv", csv([(s[:5] + " " + s[5:], y) for s, y in good]))
    c["digits in a sequence"] = (
        "digits.csv",
        csv([("MKV1LAAG" if i == 3 else s, y) for i, (s, y) in enumerate(good)]),
    )
    c["Cyrillic look-alike letters"] = (
        "cyr.csv",
        csv([("MKVАLAAGW" if i == 3 else s, y) for i, (s, y) in enumerate(good)]),
    )
    c["a quarter DNA"] = (
        "dna.csv",
        csv(
            [
                ("".join(RNG.choice(list("ACGT"), 60)) if i % 4 == 0 else s, y)
                for i, (s, y) in enumerate(good)
            ]
        ),
    )
    c["only X"] = ("xs.csv", csv([("X" * 30, y) for _, y in good]))
    c["formula labels"] = (
        "formula.csv",
        csv([(s, "=1+1" if i == 2 else y) for i, (s, y) in enumerate(good)]),
    )
    c["numbers mixed with words"] = (
        "mixed.csv",
        csv([(s, ["0", "1", "yes", "2.5"][i % 4]) for i, (s, _) in enumerate(good)]),
    )
    c["numbers in several formats"] = (
        "formats.csv",
        csv([(s, ["1.5", "2,5", "30%", "1e3"][i % 4]) for i, (s, _) in enumerate(good)], sep=";"),
    )
    c["conflicting duplicates"] = (
        "conflict.csv",
        csv(good + [(good[0][0], "TM" if good[0][1] == "AMP" else "AMP")]),
    )
    c["identical duplicates"] = ("dups.csv", csv(good + good[:5]))
    c["one class only"] = ("oneclass.csv", csv([(s, "AMP") for s, _ in good]))
    c["a class of two"] = ("rare.csv", csv(good + [(s, "ACP") for s in peptides(2)]))
    c["missing labels"] = (
        "na.csv",
        csv([(s, "NA" if i == 4 else y) for i, (s, y) in enumerate(good)]),
    )
    c["a 5,000-residue protein"] = (
        "long.csv",
        csv(good + [("".join(RNG.choice(AA, 5000)), "AMP")]),
    )
    c["labels that overflow"] = (
        "huge.csv",
        csv(
            [
                (s, f"{1e308 * (1 if i % 2 else -1)}" if i < 2 else f"{i * 0.37:.2f}")
                for i, (s, _) in enumerate(good)
            ]
        ),
    )
    c["FASTA without labels"] = (
        "plain.fasta",
        "".join(f">p{i}\n{s}\n" for i, s in enumerate(PEP)).encode(),
    )
    c["FASTA quoted header labels"] = (
        "quoted.fasta",
        "".join(f'>p{i} label="{y} x"\n{s}\n' for i, (s, y) in enumerate(good)).encode(),
    )
    c["FASTA record without sequence"] = (
        "holes.fasta",
        "".join(
            f">p{i} label={y}\n{'' if i == 3 else s}\n" for i, (s, y) in enumerate(good)
        ).encode(),
    )
    c["FASTA that is a CSV"] = ("table.fasta", csv(good))
    c["no header row"] = ("noheader.csv", b"\n".join(f"{s},{y}".encode() for s, y in good) + b"\n")
    c["duplicate column names"] = (
        "dupcols.csv",
        csv([(s, y, y) for s, y in good], header="sequence,label,label"),
    )
    c["columns swapped"] = ("swapped.csv", csv([(y, s) for s, y in good], header="label,sequence"))
    c["sequence column of numbers"] = (
        "numbers.csv",
        csv([(str(i), y) for i, (_, y) in enumerate(good)]),
    )
    c["bad split values"] = (
        "split.csv",
        csv(
            [(s, y, "train" if i != 5 else "tset") for i, (s, y) in enumerate(good)],
            header="sequence,label,split",
        ),
    )
    c["one row"] = ("onerow.csv", csv(good[:1]))
    c["per-residue label of the wrong length"] = (
        "res.csv",
        csv(
            [
                (s, "".join(RNG.choice(list("HEC"), len(s) - (1 if i == 2 else 0))))
                for i, s in enumerate(PEP)
            ]
        ),
    )
    c["quoted newline inside a cell"] = (
        "newline.csv",
        csv([(s, '"AM\nP"' if i == 1 else y) for i, (s, y) in enumerate(good)]),
    )
    c["trailing separator columns"] = (
        "trailing.csv",
        csv([(s, y, "", "") for s, y in good], header="sequence,label,,"),
    )
    c["unicode label names"] = (
        "unicode.csv",
        csv([(s, "α-helix" if i % 2 else "β-sheet") for i, s in enumerate(PEP)]),
    )
    c["very long label text"] = (
        "longlabel.csv",
        csv([(s, ("A" * 5000) if i % 2 else "B") for i, s in enumerate(PEP)]),
    )
    c["whitespace-only cells"] = (
        "blank.csv",
        csv([("   " if i == 7 else s, y) for i, (s, y) in enumerate(good)]),
    )
    return c


# what each ends as: refused (the whole file, with this phrase), error (these codes among the
# problems; nothing stored until fixed) or ok (these warnings, possibly none)
EXPECTED: dict[str, tuple[str, set[str] | str]] = {
    "empty file": ("refused", "the file is empty"),
    "header only": ("refused", "a header but no rows"),
    "random bytes": ("refused", "binary file, not text"),
    "NUL bytes in a row": ("refused", "binary file, not text"),
    "UTF-16 with BOM": ("ok", set()),
    "UTF-8 BOM": ("ok", set()),
    "semicolons": ("ok", set()),
    "tabs named .csv": ("ok", set()),
    "CRLF": ("ok", set()),
    "HTML page named .csv": ("refused", "web page (HTML)"),
    "JSON named .csv": ("refused", "JSON file"),
    "zip named .xlsx": ("refused", "not a readable Excel workbook"),
    "lowercase sequences": ("ok", set()),
    "stop codon star at the end": ("ok", set()),
    "gaps in sequences": ("error", {"invalid_characters"}),
    "spaces inside sequences": ("ok", set()),
    "digits in a sequence": ("error", {"invalid_characters"}),
    "Cyrillic look-alike letters": ("error", {"invalid_characters"}),
    "a quarter DNA": ("error", {"nucleotide_sequence"}),
    "only X": ("error", {"unknown_residues"}),
    "formula labels": ("error", {"formula_label"}),
    "numbers mixed with words": ("error", {"mixed_labels"}),
    "numbers in several formats": ("error", {"number_formats"}),
    "conflicting duplicates": ("error", {"conflicting_labels"}),
    "identical duplicates": ("ok", {"duplicates_dropped"}),
    "one class only": ("error", {"single_class"}),
    "a class of two": ("error", {"rare_class"}),
    "missing labels": ("error", {"missing_label"}),
    "a 5,000-residue protein": ("ok", {"truncated"}),
    "labels that overflow": ("error", {"label_overflow"}),
    "FASTA without labels": ("refused", "no labels found in the FASTA headers"),
    "FASTA quoted header labels": ("ok", set()),
    "FASTA record without sequence": ("error", {"empty_sequence"}),
    "FASTA that is a CSV": ("refused", "must start with a '>' header line"),
    "no header row": ("refused", "no sequence column found"),
    "duplicate column names": ("ok", {"second_label_column"}),
    "columns swapped": ("ok", set()),
    "sequence column of numbers": ("error", {"invalid_characters"}),
    "bad split values": ("error", {"bad_split"}),
    "one row": ("error", {"single_class"}),
    "per-residue label of the wrong length": ("error", {"label_length"}),
    "quoted newline inside a cell": ("error", {"rare_class"}),
    "trailing separator columns": ("ok", set()),
    "unicode label names": ("ok", set()),
    "very long label text": ("ok", set()),
    "whitespace-only cells": ("error", {"empty_sequence"}),
}


CASES = cases()


def test_every_case_has_an_expected_ending():
    assert set(CASES) == set(EXPECTED) and len(CASES) == 46


@pytest.mark.parametrize("name", list(EXPECTED))
def test_how_each_hostile_input_ends(name):
    file_name, data = CASES[name]
    ending, what = EXPECTED[name]
    try:
        result = load_upload(data, file_name)
    except DataFileError as exc:
        assert ending == "refused" and isinstance(what, str), f"{name}: refused: {exc}"
        assert what in str(exc) and file_name in str(exc)
        return
    codes = {p.code for p in result.problems}
    assert ending != "refused", f"{name}: accepted with {codes}"
    assert isinstance(what, set) and what <= codes, f"{name}: {codes}"
    if ending == "ok":
        assert result.ok and result.dataset is not None and not result.errors, codes
    else:
        assert not result.ok and result.errors
        assert all(len(p.message) > 40 for p in result.errors)  # what, where, what to do
