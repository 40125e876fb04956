"""Test these next: acquisition rules on constructed cases, the diversity penalty, and
``suggest`` end to end on a finished regression search (GFP brightness), with its messages."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pandas as pd
import pytest

from nas_core.cli import main
from nas_core.data.options import SplitOptions
from nas_core.data.splits import assign_splits
from nas_core.data.store import DatasetStore
from nas_core.data.validation import load_dataset
from nas_core.design.acquisition import acquire, expected_improvement, select_batch
from nas_core.design.config import SuggestConfig
from nas_core.design.suggest import SuggestError, order_note, suggest
from nas_core.runtime.launch import run_search
from nas_core.search.config import SearchConfig
from tests.helpers import ASSETS, tiny_space


@pytest.mark.parametrize("rule", ["ei", "ucb", "greedy"])
def test_each_rule_picks_the_known_best_candidate(rule):
    mean = np.array([0.2, 0.9, 0.5, 0.1])
    sd = np.full(4, 0.05)
    assert int(np.argmax(acquire(rule, mean, sd, best=0.6))) == 1


def test_uncertainty_wins_when_predictions_tie_and_ei_matches_its_formula():
    mean, sd = np.array([1.0, 1.0]), np.array([0.01, 0.5])
    for rule in ("ei", "ucb"):
        assert int(np.argmax(acquire(rule, mean, sd, best=1.2))) == 1
    # sd 0: the plain improvement; sd > 0: (m - b) Phi(z) + s phi(z)
    assert expected_improvement(np.array([2.0]), np.array([0.0]), 1.5)[0] == 0.5
    assert expected_improvement(np.array([1.0]), np.array([1.0]), 1.0)[0] == \
        pytest.approx(1 / np.sqrt(2 * np.pi))


def test_thompson_sampling_draws_members_and_favours_the_best_on_average():
    members = np.array([[0.1, 0.9, 0.4], [0.2, 0.8, 0.5], [0.0, 1.0, 0.3]])
    wins = [int(np.argmax(acquire("thompson", members.mean(0), members.std(0), best=0,
                                  members=members, seed=s))) for s in range(20)]
    assert wins.count(1) == 20
    draw = acquire("thompson", members.mean(0), members.std(0), best=0, members=members, seed=3)
    assert all(draw[i] in members[:, i] for i in range(3))


def test_the_diversity_penalty_keeps_near_copies_out_of_one_batch():
    score = np.array([1.0, 0.99, 0.7, 0.2])  # 0 and 1 are near-copies
    pairwise = np.zeros((4, 4))
    pairwise[0, 1] = pairwise[1, 0] = 0.99
    picks, penalties = select_batch(score, pairwise, 2, diversity=0.5)
    assert picks == [0, 2] and penalties[1] == 0
    assert select_batch(score, pairwise, 2, diversity=0.0)[0] == [0, 1]
    # a candidate close to a training sequence is pushed down too (at half weight)
    picks, _ = select_batch(np.array([1.0, 0.95, 0.0]), np.zeros((3, 3)), 1, diversity=1.0,
                            train_identity=np.array([1.0, 0.3, 0.3]))
    assert picks == [1]


@pytest.fixture(scope="module")
def gfp_run(tmp_path_factory, tiny_backbone):
    root = tmp_path_factory.mktemp("suggest")
    frame = pd.read_csv(ASSETS / "gfp_fluorescence.csv").drop(columns="split")
    frame.iloc[:150].to_csv(root / "gfp.csv", index=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ESM_NAS_HOME", str(root / "workspace"))
        dataset = assign_splits(load_dataset(root / "gfp.csv").dataset,
                                SplitOptions(method="random"))[0]
        stored = DatasetStore().save(dataset, source="gfp.csv")
        config = SearchConfig("gfp", tiny_space(tiny_backbone, epochs=1), n_trials=3, seed=0,
                              pruner="none", ensemble_size=2)
        report = run_search(config, dataset, root / "out", dataset_path=stored.path)
        yield root, report, dataset, frame


def candidates_file(root, sequences, name="candidates.csv"):
    path = root / name
    pd.DataFrame({"id": [f"c{i}" for i in range(len(sequences))],
                  "sequence": sequences}).to_csv(path, index=False)
    return path


@pytest.mark.slow  # over 20 s on two cores
def test_the_order_of_the_batch_is_explained():
    """Issue 31, item 9: not only each pick, the order too; a pick above one predicted better
    says why (Thompson sampling drew it higher where the ensemble is less sure)."""
    mean, sd = np.array([0.5, 0.9, 0.7]), np.array([0.3, 0.01, 0.05])
    ids = ["a", "b", "c"]
    chosen, none = np.array([0, 1, 2]), np.zeros(3)
    note = order_note(SuggestConfig(), mean, sd, chosen, none, ids, mean[chosen])
    assert note.startswith("The batch is ordered by the Thompson sampling score, lowered for "
                           "candidates similar to the picks above them")
    assert "#1 'a' above #2 'b' (predicted 0.5 against 0.9)" in note
    assert "Thompson sampling drew a higher plausible value for it" in note
    assert "less sure about it (uncertainty 0.3 against 0.01)" in note
    assert "shows where the model is wrong" in note
    similar = order_note(SuggestConfig(rule="greedy"), mean, np.zeros(3), np.array([1, 2, 0]),
                         np.array([0.0, 0.4, 0.0]), ids, mean[[1, 2, 0]])
    assert "Here it is also the order of the predictions" in similar
    near = order_note(SuggestConfig(rule="greedy"), np.array([0.9, 0.5, 0.7]), np.zeros(3),
                      np.array([0, 1, 2]), np.array([0.0, 0.0, 0.3]), ids,
                      np.array([0.9, 0.5, 0.7]))
    assert "'c' resembles a pick above it" in near


def test_suggest_ranks_new_candidates_with_the_ensemble(gfp_run):
    root, report, dataset, frame = gfp_run
    assert len(report.ensemble.members) == 2
    new = list(frame["sequence"].iloc[150:230])
    result = suggest(root / "out", candidates_file(root, new), SuggestConfig(batch=10))
    assert result.ensemble and result.model_dir.name == "ensemble_model"
    batch = result.frame
    assert list(batch["rank"]) == list(range(1, 11)) and batch["sequence"].is_unique
    assert {"prediction", "uncertainty", "acquisition", "nearest_train_identity",
            "identity_to_batch", "why"} <= set(batch.columns)
    assert (batch["uncertainty"] > 0).all() and batch["why"].str.len().min() > 5
    assert set(batch["sequence"]) <= set(new)
    # minimising ranks the other end of the predictions first
    low = suggest(root / "out", candidates_file(root, new),
                  SuggestConfig(batch=10, goal="minimize", rule="greedy", diversity=0.0))
    high = suggest(root / "out", candidates_file(root, new),
                   SuggestConfig(batch=10, rule="greedy", diversity=0.0))
    assert low.frame["prediction"].max() < high.frame["prediction"].min()
    assert list(high.frame["prediction"]) == sorted(high.frame["prediction"], reverse=True)


def test_suggest_messages(gfp_run, tmp_path):
    root, _, dataset, frame = gfp_run
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(SuggestError, match="empty"):
        suggest(root / "out", empty)
    training = list(dataset.part("train")["sequence"])
    with pytest.raises(SuggestError, match="already in the training data"):
        suggest(root / "out", candidates_file(tmp_path, training[:5]))
    mixed = suggest(root / "out", candidates_file(tmp_path, training[:2] + list(
        frame["sequence"].iloc[150:153])), SuggestConfig(batch=10))
    assert len(mixed.frame) == 3
    assert any("identical to training" in n for n in mixed.notes)
    assert any("only 3 are left" in n for n in mixed.notes)
    with pytest.raises(SuggestError, match="predicts a value"):
        suggest(root / "out", candidates_file(tmp_path, training[:2]),
                SuggestConfig(goal="class", target_class="x"))
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    with pytest.raises(SuggestError, match="no finished model"):
        suggest(unfinished, candidates_file(tmp_path, training[:2]))


def test_suggest_on_the_command_line(gfp_run, tmp_path, capsys):
    root, _, _, frame = gfp_run
    path = candidates_file(tmp_path, list(frame["sequence"].iloc[150:190]))
    out = tmp_path / "batch.csv"
    assert main(["suggest", str(root / "out"), str(path), "--batch", "5", "--rule", "ucb",
                 "--out", str(out)]) == 0
    batch = pd.read_csv(out)
    assert len(batch) == 5 and "ranked candidates" in capsys.readouterr().out
    empty = tmp_path / "none.fasta"
    empty.write_text("")
    assert main(["suggest", str(root / "out"), str(empty), "--out", str(out)]) == 2
    assert "empty" in capsys.readouterr().err


def test_next_round_adds_the_measurements_and_continues_the_study(gfp_run, tmp_path, capsys):
    root, report, _, frame = gfp_run
    measured = frame.iloc[150:160][["ID", "sequence", "label"]]  # the batch came back
    path = tmp_path / "measured.csv"
    measured.to_csv(path, index=False)
    assert main(["next-round", str(root / "out"), str(path), "--out",
                 str(tmp_path / "round2")]) == 0
    assert "continues gfp" in capsys.readouterr().out
    again = json.loads((tmp_path / "round2" / "report.json").read_text())
    lineage = again["lineage"]
    assert lineage["parent_study"] == "gfp" and lineage["added_sequences"] == 10
    assert lineage["parent_dataset_fingerprint"] == report.dataset.fingerprint
    assert again["dataset"]["fingerprint"] != report.dataset.fingerprint
    assert again["dataset"]["summary"]["n_sequences"] == 160
    storage = f"sqlite:///{root}/workspace/studies.db"
    parent = optuna.load_study(study_name="gfp", storage=storage)
    child = optuna.load_study(study_name="gfp-round2", storage=storage)
    best = sorted((t for t in parent.trials if t.values), key=lambda t: t.values[0],
                  reverse=True)[:2]
    assert [t.params for t in child.trials[:2]] == [t.params for t in best]
    card = (tmp_path / "round2" / "best_model" / "README.md").read_text()
    assert "Lineage" in card and "10 newly measured sequences" in card
    # the same measurements again: nothing new to add, said so
    assert main(["next-round", str(tmp_path / "round2"), str(path), "--out",
                 str(tmp_path / "round3")]) == 2
    assert "already in the dataset" in capsys.readouterr().err
