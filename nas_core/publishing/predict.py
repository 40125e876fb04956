"""Predictions from a saved model directory or a Hub repository: the one path for the app,
the CLI and the tests."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from nas_core.common.metrics import compute_metrics
from nas_core.common.probabilities import scaled_outputs
from nas_core.common.report import Verdict, load_report
from nas_core.common.tasks import Task
from nas_core.common.workspace import storage_problem, subdir
from nas_core.data.dataset import (
    UNLABELLED,
    Problem,
    invalid_characters,
    label_indices,
    normalise_sequence,
    residue_targets,
    residue_values,
)
from nas_core.data.homology import nearest_identity
from nas_core.data.pairs import read_pair_list
from nas_core.data.reading import RawTable, read_bytes, read_raw
from nas_core.data.validation import validate_for_prediction
from nas_core.modeling.batches import Encoded, encode_rows, encode_split
from nas_core.modeling.training import predict_outputs, resolve_device
from nas_core.publishing.card import CARD_REPORT
from nas_core.publishing.export import TRAINING_SEQUENCES, load_models, read_training_set
from nas_core.publishing.hub import network_errors


def prediction_columns(frame: pd.DataFrame, task: Task, label_names: list[str] | None,
                       output: np.ndarray) -> pd.DataFrame:
    """Add ``prediction`` (the value, or the most probable class) and, for classes, one
    ``p_<class>`` probability column each: the table users get from the test set and from
    prediction alike."""
    if task.label_kind == Task.REGRESSION:
        frame["prediction"] = output
        return frame
    names = label_names or []
    frame["prediction"] = [names[i] for i in output.argmax(1)]
    for i, name in enumerate(names):
        frame[f"p_{name}"] = output[:, i]
    return frame


def residue_rows(ids: list[str], sequences: list[str], task: Task,
                 label_names: list[str] | None, output: np.ndarray,
                 labels: list[str] | None = None, per_protein: pd.DataFrame | None = None
                 ) -> pd.DataFrame:
    """The long per-residue table: one row per residue (``id``, ``position`` from 1,
    ``residue``, the measured ``label`` when known, ``prediction`` and one ``p_<class>`` per
    class or the value), with ``per_protein`` columns (novelty) repeated on each row."""
    lengths = [len(o) for o in output]
    frame = pd.DataFrame({
        "id": np.repeat(np.asarray(ids, dtype=object), lengths),
        "position": np.concatenate([np.arange(1, n + 1) for n in lengths]),
        "residue": [r for seq, n in zip(sequences, lengths) for r in seq[:n]],
    })
    if labels is not None:
        if task == Task.RESIDUE_REGRESSION:
            values = [residue_values(str(t))[:n] for t, n in zip(labels, lengths)]
            frame["label"] = np.concatenate(values)
        else:
            frame["label"] = [c for t, n in zip(labels, lengths) for c in str(t)[:n]]
            frame["label"] = frame["label"].replace(UNLABELLED, None)
    stacked = np.concatenate(list(output))
    prediction_columns(frame, task.sequence_level,
                       label_names, stacked)
    if per_protein is not None:
        for column in per_protein.columns:
            frame[column] = np.repeat(per_protein[column].to_numpy(), lengths)
    return frame


def combine(outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The ensemble's output: the mean of its members' calibrated probabilities (or values)
    and their standard deviation, the same shapes as one member's output (per residue: one
    array per protein)."""
    if len(outputs) == 1:
        only = outputs[0]
        if only.dtype == object:
            return only, _objects([np.zeros_like(np.asarray(o, float)) for o in only])
        return only, np.zeros_like(np.asarray(only, float))
    if outputs[0].dtype == object:  # per residue: protein by protein
        per = [np.stack([np.asarray(o[i], float) for o in outputs])
               for i in range(len(outputs[0]))]
        return _objects([p.mean(0) for p in per]), _objects([p.std(0) for p in per])
    stacked = np.stack([np.asarray(o, float) for o in outputs])
    return stacked.mean(0), stacked.std(0)


def _objects(arrays: list[np.ndarray]) -> np.ndarray:
    out = np.empty(len(arrays), dtype=object)
    out[:] = arrays
    return out


def chosen_spread(task: Task, output: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """One uncertainty per row: the spread of the value, or of the predicted class's
    probability."""
    if task.is_regression or output.ndim == 1:
        return np.asarray(spread, float).reshape(len(spread))
    return np.asarray(spread)[np.arange(len(output)), np.asarray(output).argmax(1)]


class PredictionInputError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(p.message for p in problems))


HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
def resolve_model_dir(model: str | Path, *, token: str | None = None,
                      server_token: bool = True, local_roots: Sequence[Path] | None = None,
                      root=None) -> Path:
    """A local model directory, or a Hub repository id downloaded to the local cache.

    ``token``: the Hub token for the download; without one, ``server_token`` lets the Hub
    client use this machine's (``$HF_TOKEN`` or a cached login: the CLI). A server that serves
    visitors passes the visitor's own token and ``server_token=False``, so nobody reads private
    repositories with the server's credentials. ``local_roots``: when given, local paths are
    accepted only inside these folders (the workspace's models), so a visitor cannot probe the
    server's file system or load an arbitrary directory.

    Without the server's token, downloads go to a cache of their own per visitor token (in the
    workspace's ``hub/`` folder, named by a hash of the token): huggingface_hub serves a cached
    snapshot when the Hub refuses a request, so a shared cache would hand one visitor's private
    model to the next visitor without any token.
    """
    text = str(model).strip()
    path = Path(text).expanduser()
    if local_roots is None and path.is_dir():
        return path
    if local_roots is not None and _inside(path, local_roots):
        if path.is_dir():
            return path
        raise FileNotFoundError(f"no model directory '{text}' in this workspace.")
    if HUB_ID.fullmatch(text) and ".." not in text:
        # False: no token at all, not even one cached on the server (huggingface_hub's rule)
        if token is None and server_token:
            return _download(text, os.environ.get("HF_TOKEN") or None)
        own = hashlib.sha256((token or "").encode()).hexdigest()[:16]
        return _download(text, token or False, cache_dir=subdir("hub", root) / own)
    if local_roots is not None:
        raise FileNotFoundError(f"'{text}' is neither a model of this workspace nor a Hub "
                                "repository id like 'lab/enzyme-model': the app loads models "
                                "only from its own results or from the Hub.")
    raise FileNotFoundError(f"no model directory '{text}' (and it is not a Hub repository id "
                            "like 'lab/enzyme-model').")


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved.is_relative_to(Path(root).resolve()) for root in roots)


def _download(repo_id: str, token: str | bool | None, cache_dir: Path | None = None) -> Path:
    # imported here, not at the top: HF_ENDPOINT must be set before huggingface_hub loads
    from huggingface_hub import snapshot_download

    try:  # only our own files: safetensors + config + tokenizer, never pickles or code
        return Path(snapshot_download(
            repo_id, endpoint=os.environ.get("HF_ENDPOINT") or None, token=token,
            cache_dir=cache_dir,
            allow_patterns=["*.json", "*.safetensors", "vocab.txt", "*.md",
                            TRAINING_SEQUENCES]))
    except network_errors() as exc:
        problem = storage_problem(exc, cache_dir)  # a full or read-only disk, not the Hub
        raise FileNotFoundError(f"could not fetch '{repo_id}' from the Hub: "
                                f"{problem or _hub_reason(exc, token)}") from None


def _hub_reason(exc: BaseException, token: str | bool | None) -> str:
    """Why a download failed, in words (not the client's status line)."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403, 404) or type(exc).__name__ in ("RepositoryNotFoundError",
                                                           "GatedRepoError"):
        return ("the Hub has no model of that name that you may read. Check the name"
                + (", or give your own Hub token if it is a private repository."
                   if not token else ", and that your token may read it."))
    if status is not None:
        return (f"the Hub answered with an error ({status}). Try again in a moment.")
    return ("the Hub could not be reached (no network, or the Hub is down). Try again "
            "later, or use a model of this workspace.")


# what a reader looks at first, left to right: the call, what was measured, how far the
# sequence is from the training data and how sure the call is; the probabilities and the
# sequence itself after them
FIRST_COLUMNS = ("rank", "id", "id_2", "prediction", "known_label", "nearest_train_identity",
                 "unlike_training", "nearest_train_identity_2", "unlike_training_2")
AFTER_SETS = ("certain", "uncertainty")


def reading_order(frame: pd.DataFrame) -> pd.DataFrame:
    first = [c for c in FIRST_COLUMNS if c in frame]
    sets = [c for c in frame if c.startswith(("set_", "low_", "high_"))]
    after = [c for c in AFTER_SETS if c in frame]
    last = [c for c in ("sequence", "sequence_2") if c in frame]
    rest = [c for c in frame if c not in (*first, *sets, *after, *last)]
    return frame[first + sets + after + rest + last]


class Predictor:
    """A loaded model, kept for repeated predictions (the app caches one per model)."""

    def __init__(self, model: str | Path, *, device: str = "auto") -> None:
        self.directory = resolve_model_dir(model)  # the CLI's rule; the app resolves first
        self.device = resolve_device(device)
        self.models, self.tokenizer = load_models(self.directory)
        for member in self.models:
            member.to(self.device)
        self.model = self.models[0]
        self.info = self.model.info
        self.ensemble = len(self.models) > 1
        config = json.loads((self.directory / "config.json").read_text()).get("esm_nas", {})
        # an ensemble's averaged probabilities have their own temperature (members their own)
        self.temperature = float(config.get("temperature", 1.0)) if self.ensemble else 1.0
        self.conformal = config.get("conformal")  # calibrated on the validation split
        self.novelty_identity = float(config.get("novelty_identity") or 0.3)
        self.verdict: Verdict | None = None  # the card's plain verdict on the model, if any
        try:
            card = load_report(self.directory / CARD_REPORT)
            self.verdict = card.verdict if card is not None else None
        except (ValueError, KeyError, TypeError):
            pass  # a card report this version cannot read: predictions need none
        fasta = self.directory / TRAINING_SEQUENCES
        self.training_sequences: list[str] | None = None
        self.known_labels: dict[str, str] = {}  # training sequence -> its measured label
        if fasta.is_file():
            self.training_sequences, self.known_labels = read_training_set(fasta)

    def predict_sequences(self, sequences: list[str], *,
                          progress: Callable[[int, int], None] | None = None,
                          ids: list[str] | None = None,
                          labels: list[str] | None = None) -> pd.DataFrame:
        """One row per sequence, or for a per-residue model one row per residue (``ids``
        name the sequences there; ``labels``, when given, are the measured label strings)."""
        output, spread = self.outputs(sequences, progress=progress)
        if self.info.per_residue:
            return self._residue_frame(sequences, output, ids, labels, spread)
        frame = self._decorated(pd.DataFrame({"sequence": sequences}), output, spread)
        if self.training_sequences:
            identity = nearest_identity(sequences, self.training_sequences)
            frame["nearest_train_identity"] = np.round(identity, 3)
            frame["unlike_training"] = identity < self.novelty_identity
        known = [self.known_labels.get(s) for s in sequences]
        if any(k is not None for k in known):  # measured, not predicted: said beside it
            frame["known_label"] = known
        return reading_order(frame)

    @property
    def pairs(self) -> bool:
        """The model reads two proteins and predicts one thing about the pair."""
        return self.info.task.per_pair

    def predict_pairs(self, first: list[str], second: list[str], *,
                      progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
        """One row per pair (first[i] with second[i]): the prediction, its conformal set or
        interval, and each partner's identity to the nearest training protein with its
        novelty flag (``unlike_training`` for the first partner, ``..._2`` the second)."""
        output, spread = self.outputs((first, second), progress=progress)
        frame = self._decorated(pd.DataFrame({"sequence": first, "sequence_2": second}),
                                output, spread)
        if self.training_sequences:
            for suffix, partners in (("", first), ("_2", second)):
                distinct = list(dict.fromkeys(partners))
                found = dict(zip(distinct, nearest_identity(distinct,
                                                            self.training_sequences)))
                identity = np.array([found[p] for p in partners])
                frame[f"nearest_train_identity{suffix}"] = np.round(identity, 3)
                frame[f"unlike_training{suffix}"] = identity < self.novelty_identity
        return reading_order(frame)

    def screen(self, bait: str, candidates: list[str], ids: list[str] | None = None, *,
               progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
        """One protein against each of ``candidates``, most likely partners (or highest
        values) first, ranked from 1."""
        frame = self.predict_pairs([bait] * len(candidates), candidates, progress=progress)
        frame.insert(0, "id_2", ids if ids is not None else
                     [f"candidate {i + 1}" for i in range(len(candidates))])
        frame = frame.drop(columns=["sequence", "nearest_train_identity", "unlike_training"],
                           errors="ignore")
        order = frame["prediction"] if self.info.regression else frame[
            f"p_{(self.info.label_names or [''])[-1]}"]
        frame = frame.iloc[np.argsort(-order.to_numpy(dtype=float), kind="stable")]
        frame.insert(0, "rank", np.arange(1, len(frame) + 1))
        return frame.reset_index(drop=True)

    def screen_table(self, bait: str, raw: RawTable, *, progress=None) -> pd.DataFrame:
        """:meth:`screen` for a file of candidates; ``bait`` is a protein sequence or the ID
        of one of the candidates. Every problem at once, as :class:`PredictionInputError`."""
        if not self.pairs:
            raise PredictionInputError([Problem(
                "error", "pair_input", "one protein is screened against many by a model of "
                "protein pairs; this model reads one sequence at a time.")])
        rows, problems = validate_for_prediction(raw)
        errors = [p for p in problems if p.severity == "error"]
        known = dict(zip(rows["id"].astype(str), rows["sequence"]))
        sequence = known.get(bait.strip(), normalise_sequence(bait))
        if not sequence or invalid_characters(sequence):
            errors.append(Problem("error", "bait", f"the protein to screen ({bait[:40]!r}) is "
                                  "neither the ID of one of the candidates nor a protein "
                                  "sequence."))
        if errors:
            raise PredictionInputError(errors)
        ids = [str(i) if i is not None else f"candidate {n + 1}"
               for n, i in enumerate(rows["id"])]
        return self.screen(sequence, list(rows["sequence"]), ids, progress=progress)

    def _decorated(self, frame: pd.DataFrame, output: np.ndarray, spread: np.ndarray
                   ) -> pd.DataFrame:
        """The prediction columns, the members' spread and the conformal set or interval."""
        q = self.conformal["threshold"] if self.conformal else None
        level = f"{self.conformal['level']:.0%}" if self.conformal else ""
        prediction_columns(frame, self.info.task, self.info.label_names, output)
        if self.ensemble:  # how much the members disagree
            frame["uncertainty"] = chosen_spread(self.info.task, output, spread)
        if self.info.task.label_kind == Task.REGRESSION:
            if q is not None:  # split-conformal interval, calibrated on the validation split
                frame[f"low_{level}"] = output - q
                frame[f"high_{level}"] = output + q
        else:
            names = self.info.label_names or []
            if q is not None:  # the classes that cannot be ruled out at that confidence
                keep = output >= 1.0 - q
                frame[f"set_{level}"] = ["|".join(n for n, k in zip(names, row) if k) or "?"
                                         for row in keep]
                frame["certain"] = keep.sum(1) == 1
        return frame

    def outputs(self, sequences: list[str] | tuple[list[str], list[str]], *, progress=None,
                members: bool = False):
        """The model's (or the ensemble's mean) probabilities or values, and the members'
        spread (zeros for one model); with ``members``, also each member's outputs. A pair
        model takes ``(first, second)``: two lists of sequences, pair i being their i-th."""
        each = []
        for n, model in enumerate(self.models):
            step = None if progress is None else (
                lambda done, total, n=n: progress(n * total + done, total * len(self.models)))
            each.append(predict_outputs(model, self._inputs(model, sequences),
                                        device=self.device,
                                        pad_id=self.tokenizer.pad_token_id, progress=step))
        mean, spread = combine(each)
        if self.temperature != 1.0 and not self.info.regression:
            mean = scaled_outputs(self.info.task, mean, self.temperature)
        return (mean, spread, each) if members else (mean, spread)

    def _inputs(self, model, sequences: list[str] | tuple[list[str], list[str]]) -> Encoded:
        if isinstance(sequences, list):
            return encode_split(sequences, np.zeros(len(sequences)), self.tokenizer)
        first, second = sequences
        frame = pd.DataFrame({"sequence": first, "sequence_2": second})
        return encode_rows(frame, self.info.task, model.arch, np.zeros(len(frame)),
                           self.tokenizer)

    def _novelty(self, sequences: list[str]) -> pd.DataFrame | None:
        if not self.training_sequences:
            return None
        identity = nearest_identity(sequences, self.training_sequences)
        return pd.DataFrame({"nearest_train_identity": np.round(identity, 3),
                             "unlike_training": identity < self.novelty_identity})

    def _residue_frame(self, sequences: list[str], output: np.ndarray,
                       ids: list[str] | None, labels: list[str] | None,
                       spread: np.ndarray | None = None) -> pd.DataFrame:
        """The long table of a per-residue model, with a conformal set (or interval) for every
        residue and the novelty of its protein on each of its rows."""
        names = [str(i) if i is not None and str(i) else f"sequence {n + 1}"
                 for n, i in enumerate(ids or [None] * len(sequences))]
        frame = residue_rows(names, sequences, self.info.task, self.info.label_names, output,
                             labels, self._novelty(sequences))
        if self.ensemble and spread is not None:
            frame.insert(frame.columns.get_loc("prediction") + 1, "uncertainty", np.concatenate(
                [chosen_spread(self.info.task, np.asarray(o), np.asarray(s))
                 for o, s in zip(output, spread)]))
        if self.conformal:
            q, level = self.conformal["threshold"], f"{self.conformal['level']:.0%}"
            stacked = np.concatenate(list(output))
            if self.info.regression:
                frame[f"low_{level}"] = stacked - q
                frame[f"high_{level}"] = stacked + q
            else:
                keep = stacked >= 1.0 - q
                label_names = self.info.label_names or []
                frame[f"set_{level}"] = ["|".join(n for n, k in zip(label_names, row) if k) or
                                         "?" for row in keep]
                frame["certain"] = keep.sum(1) == 1
        return frame

    def predict_table(self, raw: RawTable, *, progress=None) -> tuple[pd.DataFrame,
                                                                       list[Problem], dict | None]:
        """Validate and predict; with labels in the input, also score the predictions."""
        if self.pairs != raw.pairs:
            raise PredictionInputError([Problem(
                "error", "pair_input",
                f"{raw.source}: this model predicts for pairs of proteins; give a table with "
                "two sequence columns (sequence_1, sequence_2), or the pairs file with the "
                "proteins' FASTA." if self.pairs else
                f"{raw.source}: holds pairs of proteins (two sequence columns), but this "
                "model reads one sequence at a time; give one sequence column.")])
        rows, problems = validate_for_prediction(raw)
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            raise PredictionInputError(errors)
        if self.info.per_residue:
            return self._residue_table(rows, problems, progress)
        if self.pairs:
            frame = self.predict_pairs(list(rows["sequence"]), list(rows["sequence_2"]),
                                       progress=progress)
            frame.insert(0, "id_2", rows["id_2"].to_numpy())
        else:
            frame = self.predict_sequences(list(rows["sequence"]), progress=progress)
        frame.insert(0, "id", rows["id"].to_numpy())
        metrics = None
        if rows["label"].notna().all():  # after the IDs and the prediction
            frame.insert(3 if self.pairs else 2, "label", rows["label"].to_numpy())
            metrics = self._score(rows["label"], frame)
        return frame, problems, metrics

    def _residue_table(self, rows: pd.DataFrame, problems: list[Problem], progress
                       ) -> tuple[pd.DataFrame, list[Problem], dict | None]:
        """Per residue: labels are scored only when every row gives one per residue."""
        sequences = list(rows["sequence"])
        labels = None
        if rows["label"].notna().all():
            candidate = [str(t).strip() for t in rows["label"]]
            if all(_residue_label_fits(t, len(s), self.info.task)
                   for t, s in zip(candidate, sequences)):
                labels = candidate
        output, spread = self.outputs(sequences, progress=progress)
        frame = self._residue_frame(sequences, output, list(rows["id"]), labels, spread)
        metrics = None
        if labels is not None:
            try:
                y = residue_targets(labels, self.info.task, self.info.label_names)
                metrics = compute_metrics(self.info.task, y, output)
            except (ValueError, IndexError):  # a class the model does not know
                metrics = None
        return frame, problems, metrics

    def _score(self, labels: pd.Series, frame: pd.DataFrame) -> dict | None:
        if self.info.task.label_kind == Task.REGRESSION:
            try:
                y = labels.astype(float).to_numpy()
            except ValueError:
                return None
            return compute_metrics(Task.REGRESSION, y, frame["prediction"].to_numpy())
        names = self.info.label_names or []
        if not set(map(str, labels)) <= set(names):
            return None
        y = label_indices(labels, names)
        probs = frame[[f"p_{n}" for n in names]].to_numpy()
        return compute_metrics(self.info.task, y, probs)


def _residue_label_fits(text: str, length: int, task: Task) -> bool:
    if task == Task.RESIDUE_REGRESSION:
        return len(text.replace(",", " ").split()) == length
    return len(text) == length


def predict_file(model: str | Path, data: str | Path | bytes, *, name: str | None = None,
                 device: str = "auto", progress=None, proteins: str | Path | None = None,
                 bait: str | None = None):
    """Predict a file: sequences, pairs (two sequence columns, or with ``proteins`` a pairs
    file of IDs and the proteins' FASTA), or with ``bait`` one protein (a sequence, or the
    ID of a record of ``data``) screened against every sequence of ``data``, ranked."""
    predictor = Predictor(model, device=device)
    if proteins is not None:
        source = (name or "pairs.tsv", data) if isinstance(data, bytes) else data
        raw = read_pair_list(source, proteins, require_label=False)
    else:
        raw = (read_bytes(data, name or "upload.csv", require_label=False)
               if isinstance(data, bytes) else read_raw(data, require_label=False))
    if bait is None:
        return predictor.predict_table(raw, progress=progress)
    return predictor.screen_table(bait, raw, progress=progress), [], None
