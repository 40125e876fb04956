"""Test these next: rank unlabelled candidate sequences by an acquisition rule over the finished
search's ensemble (or its best model), and pick a batch that is not twenty near-copies.

One path for the page, the CLI (``suggest RUN_DIR CANDIDATES --batch N --out FILE``) and the
design-loop benchmark."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from nas_core.common.tasks import Task
from nas_core.data import homology
from nas_core.data.pairs import read_pair_list
from nas_core.data.reading import DataFileError, RawTable, read_bytes, read_raw
from nas_core.data.validation import validate_for_prediction
from nas_core.design.acquisition import acquire, select_batch
from nas_core.design.config import RULES, SuggestConfig
from nas_core.modeling.batches import joined_pairs
from nas_core.publishing.predict import Predictor

ENSEMBLE_DIR, BEST_DIR = "ensemble_model", "best_model"
POOL = 200  # candidates aligned against each other for the diversity penalty (at least)



class SuggestError(ValueError):
    """A message for the user: what is wrong and what to do."""


@dataclass
class Suggestion:
    frame: pd.DataFrame  # the batch, best first
    notes: list[str]
    model_dir: Path
    ensemble: bool


def model_dir_of(run_dir: str | Path) -> Path:
    """The run's ensemble, or its best model when it has no ensemble (or a model folder given
    itself); a message when the run has neither (no finished trial, or not tested and exported
    yet)."""
    run = Path(run_dir)
    if not run.is_dir():
        raise SuggestError(f"no results folder '{run}': give the folder a finished search "
                           "wrote (its --out, with report.json and best_model/).")
    if (run / "config.json").is_file():  # a model folder itself
        return run
    for name in (ENSEMBLE_DIR, BEST_DIR):
        if (run / name / "config.json").is_file():
            return run / name
    raise SuggestError(f"'{run}' has no finished model yet: the search has no finished trial, "
                       "or its best trial was not tested and exported. Wait until a trial "
                       "finishes, then use 'Test and export' on the Results page (or "
                       "`python -m nas_core finalise`), and suggest again.")


def read_candidates(source: str | Path | bytes | RawTable, name: str | None = None, *,
                    proteins: str | Path | None = None) -> pd.DataFrame:
    """Candidate sequences (FASTA / CSV / TSV / Excel, or a table already read; labels
    ignored), validated like training data; every problem at once. Candidate pairs: a table
    with two sequence columns, or with ``proteins`` a pairs file of IDs and their FASTA."""
    try:
        if proteins is not None:
            raw: RawTable = read_pair_list(
                (name or "pairs.tsv", source) if isinstance(source, bytes) else
                source, proteins, require_label=False)  # type: ignore[arg-type]
        else:
            raw = (source if isinstance(source, RawTable) else
                   read_bytes(source, name or "candidates.csv", require_label=False)
                   if isinstance(source, bytes) else read_raw(source, require_label=False))
    except DataFileError as exc:
        raise SuggestError(f"candidates: {exc}") from None
    rows, problems = validate_for_prediction(raw)
    errors = [p.message for p in problems if p.severity == "error"]
    if errors:
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise SuggestError("the candidate file has problems; fix them and upload it again: "
                           + " ".join(errors[:5]) + more)
    if rows.empty:
        raise SuggestError("the candidate file has no sequences: upload a FASTA or a table "
                           "with a sequence column.")
    rows = rows.reset_index(drop=True)
    rows["id"] = [str(i) if i is not None and str(i) and str(i) != "nan" else f"candidate {n + 1}"
                  for n, i in enumerate(rows["id"])]
    if "id_2" in rows:
        rows["id_2"] = [str(i) if i is not None and str(i) and str(i) != "nan" else
                        f"partner {n + 1}" for n, i in enumerate(rows["id_2"])]
    return rows


def suggest(run_dir: str | Path, candidates: str | Path | bytes | RawTable | pd.DataFrame,
            config: SuggestConfig = SuggestConfig(), *, name: str | None = None,
            predictor: Predictor | None = None, progress=None,
            proteins: str | Path | None = None) -> Suggestion:
    """The ranked batch: for each pick its prediction, uncertainty, acquisition score,
    nearest training identity and why it was picked."""
    directory = model_dir_of(run_dir)
    rows = candidates if isinstance(candidates, pd.DataFrame) else read_candidates(
        candidates, name, proteins=proteins)
    predictor = predictor or Predictor(directory)
    info = predictor.info
    names = info.label_names or []
    target = _target(config, info.task, names)
    notes: list[str] = []
    if not predictor.ensemble:
        notes.append("This run has no ensemble, so there is no uncertainty to explore with: "
                     "the batch is ranked by prediction alone. Finalise with an ensemble "
                     "size of 2 or more for the acquisition rules to matter.")
    pairs = predictor.pairs
    if pairs and "sequence_2" not in rows:
        raise SuggestError("this model ranks pairs of proteins: give a table with two "
                           "sequence columns (sequence_1, sequence_2), or a pairs file of IDs "
                           "with the proteins' FASTA (--proteins in the CLI).")
    if not pairs and "sequence_2" in rows:
        raise SuggestError("the candidates are pairs of proteins, but this model reads one "
                           "sequence at a time: give one sequence per row.")
    if pairs:  # one key per pair: both partners (joined as a cross-encoder reads them)
        rows = rows.assign(key=joined_pairs(rows))
    rows = _new_candidates(rows, None if pairs else predictor.training_sequences, notes)
    batch = config.batch
    if batch > len(rows):
        notes.append(f"You asked for {batch} candidates but only {len(rows)} are left to "
                     f"choose from: all {len(rows)} are ranked.")
        batch = len(rows)
    sequences = list(rows["key"] if pairs else rows["sequence"])
    inputs = (list(rows["sequence"]), list(rows["sequence_2"])) if pairs else sequences
    mean, spread, each = predictor.outputs(inputs, progress=progress, members=True)
    sign = -1.0 if config.goal == "minimize" else 1.0
    if target is None:  # a value
        goal_mean, goal_sd = sign * np.asarray(mean, float), np.asarray(spread, float)
        members = sign * np.stack([np.asarray(e, float) for e in each])
        best = _incumbent(directory, config.goal)
        if not np.isfinite(best):  # an older export without the measured range
            best = float(goal_mean.max())
    else:
        goal_mean, goal_sd = np.asarray(mean)[:, target], np.asarray(spread)[:, target]
        members = np.stack([np.asarray(e)[:, target] for e in each])
        best = 0.5  # "improvement" over even odds
    picked = pick_batch(sequences, goal_mean, goal_sd, config, best=best, members=members,
                        batch=batch, training=None if pairs else predictor.training_sequences)
    chosen, score, train_identity = picked.chosen, picked.score, picked.train_identity
    frame = pd.DataFrame({"rank": np.arange(1, len(chosen) + 1),
                          "id": rows["id"].to_numpy()[chosen]})
    if pairs:
        frame["id_2"] = rows["id_2"].to_numpy()[chosen]
        train_identity = _partner_identity(rows.iloc[chosen], predictor.training_sequences,
                                           frame)
    frame["sequence"] = rows["sequence"].to_numpy()[chosen]
    if pairs:
        frame["sequence_2"] = rows["sequence_2"].to_numpy()[chosen]
    value = np.asarray(mean, float) if target is None else np.asarray(mean)[:, target]
    frame["prediction" if target is None else f"p_{names[target]}"] = value[chosen]
    frame["uncertainty"] = (np.asarray(spread, float) if target is None
                            else np.asarray(spread)[:, target])[chosen]
    frame["acquisition"] = score[chosen]
    novelty = (np.round(train_identity, 3) if train_identity is not None
               else np.full(len(chosen), np.nan))
    if "nearest_train_identity" not in frame:
        frame["nearest_train_identity"] = novelty
    frame["identity_to_batch"] = np.round(picked.identity_to_batch, 3)
    frame["why"] = _reasons(config, goal_mean, goal_sd, chosen, picked.penalties,
                            novelty,
                            predictor.novelty_identity)
    notes.append(order_note(config, goal_mean, goal_sd, chosen, picked.penalties,
                            list(frame["id"]), value[chosen]))
    return Suggestion(frame, notes, directory, predictor.ensemble)


def _partner_identity(chosen: pd.DataFrame, training: list[str] | None,
                      frame: pd.DataFrame) -> np.ndarray | None:
    """Pairs: each pick's partners' identities to their nearest training protein (as
    ``nearest_train_identity_2`` for the second); returns the closer one of each pair, what
    the batch's novelty is judged on (a pair is new only when both proteins are)."""
    if not training:
        return None
    found = []
    for column in ("sequence", "sequence_2"):
        found.append(homology.nearest_identity(list(chosen[column]), training))
    frame["nearest_train_identity"] = np.round(found[0], 3)
    frame["nearest_train_identity_2"] = np.round(found[1], 3)
    return np.maximum(found[0], found[1])


def order_note(config: SuggestConfig, mean: np.ndarray, sd: np.ndarray, chosen: np.ndarray,
               penalties: np.ndarray, ids: list[str], shown: np.ndarray) -> str:
    """Why the batch is in this order: the rule's score, not the prediction alone; and, where
    a pick ranks above one predicted better, the clearest such case and why it is useful.
    ``mean``/``sd`` are on the goal's scale (higher is better); ``shown`` as the table shows
    the prediction."""
    name = RULES[config.rule].split(":")[0]
    order = (f"The batch is ordered by the {name if config.rule == 'thompson' else name.lower()}"
             " score"
             + (", lowered for candidates similar to the picks above them" if
                config.diversity > 0 else "") + ", not by the prediction alone.")
    goal = mean[chosen]
    pairs = [(i, j) for i in range(len(chosen)) for j in range(i + 1, len(chosen))
             if goal[j] > goal[i] + 1e-9]
    if not pairs:
        return order + " Here it is also the order of the predictions."
    i, j = max(pairs, key=lambda p: goal[p[1]] - goal[p[0]])
    a, b = chosen[i], chosen[j]
    if penalties[j] > 0.05:
        why = (f"'{ids[j]}' resembles a pick above it, and a batch of near-copies teaches "
               "little")
    elif sd[a] > sd[b]:
        drawn = ("Thompson sampling drew a higher plausible value for it" if
                 config.rule == "thompson" else "its uncertainty raises its score")
        why = (f"{drawn}, because the ensemble is less sure about it (uncertainty "
               f"{sd[a]:.3g} against {sd[b]:.3g}); measuring such candidates shows where the "
               "model is wrong, which a batch of only the best predictions never does")
    else:
        why = "its score under the rule is higher"
    return (order + f" {len(pairs)} pair(s) of picks rank against their predictions; the "
            f"clearest: #{i + 1} '{ids[i]}' above #{j + 1} '{ids[j]}' (predicted "
            f"{shown[i]:.3g} against {shown[j]:.3g}): {why}.")


@dataclass
class Picked:
    chosen: np.ndarray  # candidate indices, best first
    score: np.ndarray  # every candidate's acquisition score
    penalties: np.ndarray  # each pick's diversity penalty when it was taken
    train_identity: np.ndarray | None  # each pick's identity to its nearest training sequence
    identity_to_batch: np.ndarray  # each pick's identity to the closest pick above it


def pick_batch(sequences: list[str], mean: np.ndarray, sd: np.ndarray, config: SuggestConfig,
               *, best: float, members: np.ndarray | None, batch: int,
               training: list[str] | None) -> Picked:
    """Acquisition scores on the goal's scale for every candidate, then the greedy diverse
    batch from the best-scoring pool (identities from MMseqs2)."""
    score = acquire(config.rule, mean, sd, best=best, members=members, seed=config.seed)
    pool = np.argsort(-score, kind="stable")[:max(POOL, 10 * batch)]
    pool_seqs = [sequences[i] for i in pool]
    pairwise = pairwise_identity(pool_seqs)
    train_identity = (homology.nearest_identity(pool_seqs, training) if training else None)
    picks, penalties = select_batch(score[pool], pairwise, batch, diversity=config.diversity,
                                    train_identity=train_identity)
    return Picked(pool[picks], score, penalties,
                  train_identity[picks] if train_identity is not None else None,
                  _identity_to_earlier(pairwise, picks))


def _target(config: SuggestConfig, task: Task, names: list[str]) -> int | None:
    if task.per_residue:
        raise SuggestError("this is a per-residue model: 'test these next' ranks whole "
                           "sequences, so it needs a model that predicts one value or class "
                           "per sequence.")
    if task.label_kind == Task.REGRESSION:
        if config.goal == "class":
            raise SuggestError("this model predicts a value, not classes: choose the goal "
                               "maximize or minimize.")
        return None
    if config.goal != "class" and config.target_class is None:
        raise SuggestError("this model predicts classes: choose the goal 'class' and which "
                           f"class to find ({', '.join(names)}).")
    if config.target_class not in names:
        raise SuggestError(f"'{config.target_class}' is not one of the model's classes: "
                           f"choose one of {', '.join(names)}.")
    return names.index(config.target_class)


def _new_candidates(rows: pd.DataFrame, training: list[str] | None,
                    notes: list[str]) -> pd.DataFrame:
    """Each distinct candidate once, and none the model already learnt from."""
    repeated = rows["key" if "key" in rows else "sequence"].duplicated()
    if repeated.any():
        notes.append(f"{int(repeated.sum())} candidate(s) repeat an earlier row's sequence: "
                     "each sequence is ranked once.")
        rows = rows[~repeated]
    if training:
        known = rows["sequence"].isin(set(training))
        if known.all():
            raise SuggestError(f"all {len(rows)} candidate sequences are already in the "
                               "training data: their labels are known. Upload new "
                               "sequences (variants, designs) to rank.")
        if known.any():
            notes.append(f"{int(known.sum())} candidate(s) are identical to training "
                         "sequences (already measured) and were left out: "
                         + ", ".join(map(str, rows.loc[known, "id"].head(5)))
                         + (" ..." if known.sum() > 5 else "") + ".")
            rows = rows[~known]
    return rows.reset_index(drop=True)


def _incumbent(directory: Path, goal: str) -> float:
    """The best value measured so far, on the goal's scale (higher is better)."""
    meta = json.loads((directory / "config.json").read_text()).get("esm_nas", {})
    observed = meta.get("observed") or {}
    if goal == "minimize":
        return -float(observed.get("min", np.inf)) if "min" in observed else -np.inf
    return float(observed["max"]) if "max" in observed else -np.inf


def pairwise_identity(sequences: list[str]) -> np.ndarray:
    """Identity between every two candidates of the pool (0 where MMseqs2 finds nothing)."""
    n = len(sequences)
    matrix = np.zeros((n, n))
    hits = homology.search(sequences, sequences)
    if len(hits):
        q, t = hits["query"].to_numpy(dtype=int), hits["target"].to_numpy(dtype=int)
        np.maximum.at(matrix, (q, t), hits["identity"].to_numpy())
        np.maximum.at(matrix, (t, q), hits["identity"].to_numpy())
    np.fill_diagonal(matrix, 0.0)
    return matrix


def _identity_to_earlier(pairwise: np.ndarray, picks: list[int]) -> np.ndarray:
    return np.array([pairwise[p, picks[:i]].max() if i else 0.0 for i, p in enumerate(picks)])


def _reasons(config: SuggestConfig, mean: np.ndarray, sd: np.ndarray, chosen: np.ndarray,
             penalties: np.ndarray, identity: np.ndarray, novelty: float) -> list[str]:
    """One sentence per pick, from where it stands among all candidates."""
    n = len(mean)
    mean_rank = (-mean).argsort(kind="stable").argsort()
    sd_rank = (-sd).argsort(kind="stable").argsort()
    out = []
    for i, c in enumerate(chosen):
        parts = []
        if mean_rank[c] < max(1, n // 10):
            parts.append(f"predicted in the top {math.ceil(100 * (mean_rank[c] + 1) / n)}% "
                         "of candidates" if mean_rank[c] else
                         "the best prediction of all candidates")
        if sd.max() > 0 and sd_rank[c] < max(1, n // 4):
            parts.append("the ensemble disagrees about it (worth learning from)")
        if not np.isnan(identity[i]) and identity[i] < novelty:
            parts.append(f"unlike the training set ({identity[i]:.0%} identity)")
        if penalties[i] > 0.05:
            parts.append("chosen despite some similarity to the batch")
        if not parts:
            parts.append({"ei": "a good balance of prediction and uncertainty",
                          "ucb": "a high optimistic value", "thompson": "drawn as plausibly "
                          "best", "greedy": "a high prediction"}[config.rule])
        if i and penalties[i] <= 0.05 and config.diversity > 0:
            parts.append("different from the picks above it")
        out.append("; ".join(parts).capitalize() + ".")
    return out
