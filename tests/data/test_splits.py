from __future__ import annotations

import pytest

from nas_core.data.options import SplitOptions
from nas_core.data.splits import assign_splits
from nas_core.data.store import DatasetStore, import_dataset, load_stored
from nas_core.data.validation import load_dataset
from tests.helpers import ASSETS


def test_random_split_is_seeded_stratified_and_disjoint():
    dataset = load_dataset(ASSETS / "anticancer_vs_random.csv").dataset
    a, notes = assign_splits(dataset, SplitOptions(method="random", seed=3))
    b, _ = assign_splits(dataset, SplitOptions(method="random", seed=3))
    c, _ = assign_splits(dataset, SplitOptions(method="random", seed=4))
    assert list(a.frame["split"]) == list(b.frame["split"])
    assert list(a.frame["split"]) != list(c.frame["split"])
    parts = {s: set(a.part(s)["sequence"]) for s in ("train", "valid", "test")}
    assert not parts["train"] & parts["valid"] and not parts["train"] & parts["test"]
    assert not parts["valid"] & parts["test"]
    counts = a.summary().splits or {}
    assert counts == {"train": 660, "valid": 83, "test": 83}
    for split in ("train", "test"):
        share = (a.part(split)["label"] == "ACP").mean()
        assert abs(share - 0.5) < 0.03  # stratified
    assert notes[0].code == "random_split"


@pytest.mark.slow  # over 20 s on two cores
def test_regression_split_is_binned_by_label():
    dataset = load_dataset(ASSETS / "gfp_fluorescence.csv").dataset
    dataset.frame["split"] = None  # ignore the file's split: make the app split it
    out, _ = assign_splits(dataset, SplitOptions(method="random", seed=0))
    train, test = out.part("train")["label"], out.part("test")["label"]
    assert abs(train.median() - test.median()) < 0.3
    assert (test < 2.5).sum() >= 5  # the dark mode is represented in the test split


def test_user_split_is_honoured_and_missing_test_is_carved_from_train():
    dataset = load_dataset(ASSETS / "gfp_fluorescence.csv").dataset
    valid_before = set(dataset.frame.loc[dataset.frame["split"] == "valid", "sequence"])
    out, notes = assign_splits(dataset)
    assert set(out.part("valid")["sequence"]) == valid_before
    assert len(out.part("test")) == 50 and len(out.part("train")) == 350
    assert any(n.code == "carved_test" for n in notes)


def test_split_without_training_rows_is_refused(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("sequence,label,split\n" + "".join(
        f"{'MKV' + 'A' * i},{i % 2},test\n" for i in range(20)))
    outcome = import_dataset(path)
    assert not outcome.ok
    assert "no training rows" in outcome.result.errors[0].message


def test_fingerprint_ignores_row_order_but_not_content():
    dataset = load_dataset(ASSETS / "amp_vs_transmembrane.csv").dataset
    split, _ = assign_splits(dataset)
    shuffled = split.frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    same = type(split)(shuffled, split.task, split.label_names)
    assert same.fingerprint == split.fingerprint
    changed = shuffled.copy()
    changed.loc[0, "label"] = "TM" if changed.loc[0, "label"] == "AMP" else "AMP"
    assert type(split)(changed, split.task, split.label_names).fingerprint != split.fingerprint


def test_store_round_trip_and_listing(workspace):
    store = DatasetStore()
    outcome = import_dataset(ASSETS / "gfp_fluorescence.csv", name="gfp_fluorescence.csv",
                             store=store)
    again = import_dataset(ASSETS / "gfp_fluorescence.csv", name="gfp_fluorescence.csv",
                           store=store)
    assert outcome.stored.id == again.stored.id
    assert [r.id for r in DatasetStore().list()] == [outcome.stored.id]
    loaded = store.load(outcome.stored.id)
    assert loaded.fingerprint == outcome.dataset.fingerprint
    assert loaded.frame["label"].dtype == float
    assert (workspace / "datasets" / outcome.stored.id / "data.csv").exists()
    # tampering is detected, not silently trained on
    path = workspace / "datasets" / outcome.stored.id / "data.csv"
    path.write_text(path.read_text().replace(",train,", ",test,", 1))
    with pytest.raises(ValueError, match="changed on disk"):
        load_stored(store.get(outcome.stored.id))
