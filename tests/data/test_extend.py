"""Measured candidates added to a stored dataset: old splits kept, new ones placed by the split's
own rule, every bad row named, the parent recorded."""

from __future__ import annotations

import pandas as pd

from nas_core.data.extend import extend_dataset
from nas_core.data.options import SplitOptions
from nas_core.data.splits import assign_splits
from nas_core.data.store import DatasetStore, load_stored
from nas_core.data.validation import load_dataset
from nas_core.runtime.jobs import next_round_name
from tests.helpers import ASSETS, store_example

UNRELATED = "WHWHCWMHPYWCHGWMYPNF"


def mutate(seq: str) -> str:
    return seq[:3] + ("A" if seq[3] != "A" else "G") + seq[4:]


def measurements(tmp_path, rows, name="measured.csv"):
    path = tmp_path / name
    pd.DataFrame(rows, columns=["id", "sequence", "label"]).to_csv(path, index=False)
    return path


def test_new_measurements_keep_the_old_splits_and_the_homology_guarantee(tmp_path, workspace):
    parent = store_example()
    base = load_stored(parent)
    test_seq = base.part("test")["sequence"].iloc[0]
    label = base.part("test")["label"].iloc[0]
    path = measurements(tmp_path, [("near", mutate(test_seq), label),
                                   ("far", UNRELATED, "AMP")])
    store = DatasetStore()
    out = extend_dataset(parent, path, store=store)
    assert out.ok, out.problems
    assert out.added == {"train": 1, "valid": 0, "test": 1}
    assert any("related" in n for n in out.notes)
    extended = out.dataset
    assert extended.fingerprint != base.fingerprint
    merged = extended.frame.set_index("sequence")
    for seq, split in zip(base.frame["sequence"], base.frame["split"]):
        assert merged.at[seq, "split"] == split  # nothing held out moved
    assert merged.at[mutate(test_seq), "split"] == "test"
    assert merged.at[UNRELATED, "split"] == "train"
    assert out.stored.parent["id"] == parent.id and out.stored.parent["added"] == 2
    assert store.get(out.stored.id).parent["fingerprint"] == parent.fingerprint


def test_bad_measurement_rows_are_named_and_nothing_is_stored(tmp_path, workspace):
    parent = store_example()
    store = DatasetStore()
    before = len(store.list())
    path = measurements(tmp_path, [("a", UNRELATED, "AMP"), ("b", "MKLLVV", None),
                                   ("c", "MKLLWV", "enzyme"), ("d", "MK1LV", "TM")])
    out = extend_dataset(parent, path, store=store)
    assert not out.ok and len(store.list()) == before
    text = " ".join(p.message for p in out.problems)
    assert "row 3" in text and "no measured label" in text
    assert "row 4" in text and "'enzyme' is not one of this dataset's classes" in text
    assert "invalid character" in text
    known = load_stored(parent).frame["sequence"].iloc[0]
    again = extend_dataset(parent, measurements(tmp_path, [("x", known, "AMP")]), store=store)
    assert not again.ok and "already in the dataset" in again.problems[0].message


def test_a_split_without_a_homology_guarantee_trains_on_everything_new(tmp_path, workspace):
    frame = pd.read_csv(ASSETS / "gfp_fluorescence.csv").drop(columns="split").iloc[:120]
    frame.to_csv(tmp_path / "gfp.csv", index=False)
    base = assign_splits(load_dataset(tmp_path / "gfp.csv").dataset,
                         SplitOptions(method="random"))[0]
    parent = DatasetStore().save(base, source="gfp.csv")
    variant = mutate(base.part("valid")["sequence"].iloc[0])
    out = extend_dataset(parent, measurements(tmp_path, [("v", variant, "3.5")]),
                         store=DatasetStore())
    assert out.ok and out.added["train"] == 1
    assert any("does not keep relatives apart" in n for n in out.notes)
    bad = extend_dataset(parent, measurements(tmp_path, [("v", variant, "bright")]),
                         store=DatasetStore())
    assert "is not a number" in bad.problems[0].message


def test_round_names():
    assert next_round_name("gfp", set()) == "gfp-round2"
    assert next_round_name("gfp-round2", {"gfp-round3"}) == "gfp-round4"
