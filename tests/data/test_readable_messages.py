"""Issue 31, item 10: messages a person can read. A conflict between long per-residue labels
shows their start and how many positions differ; replicate measurements of one sequence get a
'keep the mean' fix beside 'drop'; a file of SMILES is named as chemistry."""

from __future__ import annotations

import numpy as np
import pytest

from nas_core.data.options import IngestOptions
from nas_core.data.reading import DataFileError
from nas_core.data.validation import load_upload

PEPTIDES = ["MKVLAAGIWLLA", "GLFDIIKKIAES", "KWKLFKKIEKVG", "AAGAATVLLVIV", "FLPLIGRVLSGI",
            "ILPWKWPWWPWR", "GIGKFLHSAKKF", "RRWQWRMKKLGA"] * 2


def table(rows: list[tuple[str, str]]) -> bytes:
    return ("sequence,label\n" + "".join(f"{s},{v}\n" for s, v in rows)).encode()


def test_a_per_residue_conflict_shows_the_starts_and_the_differing_positions():
    protein = "MKV" + "LAAGIWLLAG" * 30  # 303 residues
    first, second = "H" * 303, "H" * 280 + "E" * 23
    rng = np.random.default_rng(0)
    rows = [(protein, first), (protein, second)] + [
        (s * 3, "".join(rng.choice(list("HEC"), 3 * len(s)))) for s in PEPTIDES[:8]]
    result = load_upload(table(rows), "ss.csv", IngestOptions(min_class_size=1))
    (conflict,) = [p for p in result.errors if p.code == "conflicting_labels"]
    assert "per-residue labels that differ at 23 of 303 positions" in conflict.message
    assert "'HHHHHHHHHHHH...' (303 residues)" in conflict.message
    assert len(conflict.message) < 400  # not hundreds of letters


def test_replicate_measurements_can_be_averaged_or_dropped():
    rows = [(s, f"{i}.5") for i, s in enumerate(PEPTIDES[:8])]
    rows += [(PEPTIDES[0], "1.5"), (PEPTIDES[1], "3"), (PEPTIDES[1], "4")]
    result = load_upload(table(rows), "assay.csv")
    replicates = [p for p in result.errors if p.code == "replicate_values"]
    assert len(replicates) == 2
    assert "measured 2 times with different labels 0.5, 1.5" in replicates[0].message
    assert "replicate measurements? Keep their mean, or drop the sequence" in \
        replicates[0].message
    assert set(result.offered_fixes) == {"mean_replicates", "drop_conflicts"}
    assert result.offered_fixes["mean_replicates"].startswith(
        "Keep the mean of the 2 sequences' replicate measurements")
    averaged = load_upload(table(rows), "assay.csv",
                           IngestOptions(fixes=frozenset({"mean_replicates"})))
    assert averaged.ok and averaged.dataset is not None
    frame = averaged.dataset.frame.set_index("sequence")
    assert frame.loc[PEPTIDES[0], "label"] == pytest.approx(1.0)
    assert frame.loc[PEPTIDES[1], "label"] == pytest.approx((1.5 + 3 + 4) / 3)
    assert len(frame) == 8
    assert any("2 sequence(s) now carry the mean" in a for a in averaged.applied_fixes)


def test_per_residue_replicates_are_averaged_position_by_position():
    protein = PEPTIDES[0]
    rng = np.random.default_rng(1)
    rows = [(s, " ".join(f"{v:.2f}" for v in rng.random(len(s)))) for s in PEPTIDES[1:8]]
    rows += [(protein, " ".join(["1"] * 12)), (protein, " ".join(["3"] * 11 + ["nan"]))]
    result = load_upload(table(rows), "values.csv",
                         IngestOptions(fixes=frozenset({"mean_replicates"})))
    assert result.ok and result.dataset is not None
    label = result.dataset.frame.set_index("sequence").loc[protein, "label"]
    assert label.split() == ["2.0"] * 11 + ["1.0"]


def test_smiles_are_named_as_chemistry_not_dropped_row_by_row():
    smiles = ["CC(=O)Oc1ccccc1C(=O)O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "O=C(O)C",
              "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "c1ccc2c(c1)cccc2", "C[C@H](N)C(=O)O"] * 4
    result = load_upload(table([(s, str(i % 2)) for i, s in enumerate(smiles)]), "mols.csv")
    assert [p.code for p in result.errors] == ["chemistry"]
    assert "24 of 24 entries look like SMILES" in result.errors[0].message
    assert not result.offered_fixes  # no "drop all 24 rows"
    with pytest.raises(DataFileError, match="the column 'SMILES' holds chemical structures"):
        load_upload(("SMILES,label\n" + "".join(f"{s},1\n" for s in smiles)).encode(),
                    "mols.csv")
    lowercase = load_upload(table([(s.lower(), str(i % 2)) for i, s in enumerate(PEPTIDES)]),
                            "lower.csv")  # lower-case proteins are proteins
    assert "chemistry" not in {p.code for p in lowercase.problems}
