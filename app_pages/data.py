from pathlib import Path

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from nas_core.common.tasks import Task
from nas_core.common.text import md_sentence, md_text
from nas_core.common.workspace import StorageError, storage_problem
from nas_core.data.examples import DEFAULT_EXAMPLE, EXAMPLES
from nas_core.data.options import IngestOptions, SplitOptions
from nas_core.data.pair_splits import EXPLANATION as PAIR_EXPLANATION
from nas_core.data.pairs import sniff_pairs_upload
from nas_core.data.reading import FASTA_UPLOAD_TYPES, UPLOAD_TYPES, DataFileError
from nas_core.data.splits import EXPLANATION
from nas_core.data.store import ImportOutcome, import_dataset
from ui import engine, render, resources
from ui.identity import current_user

st.title("Data")
store = resources.dataset_store(resources.workspace())
user = current_user()
state = st.session_state
state.setdefault("data_fixes", [])


def _use_upload() -> None:
    state["data_source"] = "upload"
    state["data_fixes"] = []
    state["data_class_names"] = ()


def _use_flip() -> None:
    state["data_source"] = "flip"
    state["data_fixes"] = []
    state["data_class_names"] = ()


def _use_pairs() -> None:
    state["data_source"] = "pairs"
    state["data_fixes"] = []
    state["data_class_names"] = ()


def _use_example() -> None:
    state["data_source"] = "example"
    state["data_fixes"] = []
    state["data_class_names"] = ()


upload = st.file_uploader(
    "Labelled sequences: CSV, TSV, Excel or FASTA",
    type=UPLOAD_TYPES, key="data_upload", on_change=_use_upload,
    help="One sequence per row with a label column, or FASTA headers like '>P12345 label=1'. "
    "An optional 'split' column (train/valid/test) is honoured. Per-residue labels: a label "
    "string as long as the sequence ('HHHEEECCC', '-' for no label) or that many numbers. "
    "Each file is one dataset: a second file replaces the first here (both are stored).")
with st.expander("Per-residue labels in the FLIP / biotrainer layout (2 or 3 FASTA files)",
                 expanded=state.get("data_source") == "flip"):
    flip_files = st.file_uploader(
        "The sequences, the labels and (optionally) the mask", type=FASTA_UPLOAD_TYPES,
        key="data_flip_upload", on_change=_use_flip, accept_multiple_files=True,
        help="Dropped together, in any order: a FASTA of sequences, a FASTA of label strings "
        "with 'SET=train VALIDATION=False' in each header, and optionally a FASTA of 0/1 "
        "masks.")
    flip_name = st.text_input(
        "Name of this dataset", key="data_flip_name", on_change=_use_flip,
        placeholder="the folder's name, e.g. secondary_structure",
        help="Browsers send the files without their folder: the name you give is how the "
        "dataset, its searches and its models are called.")
with st.expander("Protein pairs listed by ID (a pairs file and the proteins' FASTA)",
                 expanded=state.get("data_source") == "pairs"):
    pair_files = st.file_uploader(
        "The pairs file and the proteins' FASTA", type=[*UPLOAD_TYPES, *FASTA_UPLOAD_TYPES],
        key="data_pairs_upload", on_change=_use_pairs, accept_multiple_files=True,
        help="Dropped together, in any order: a table of 'protein_1 protein_2 label' (tab, "
        "comma or space separated, header optional; D-SCRIPT's layout) and a FASTA whose "
        "headers are those IDs. A table with both sequences in columns (sequence_1, "
        "sequence_2, label) goes in the first box instead.")
left, right = st.columns([3, 1])
example = left.selectbox("...or try a real example", list(EXAMPLES), key="data_example",
                         format_func=lambda k: EXAMPLES[k].title,
                         index=list(EXAMPLES).index(DEFAULT_EXAMPLE))
right.button("Use the example dataset", on_click=_use_example, width="stretch")

# the columns the last file was read with, shown in the (empty) boxes: found, not typed
found_seq, found_label = state.get("data_columns", (None, None))
with st.expander("Columns and task", expanded=False):
    c1, c2, c3 = st.columns(3)
    seq_col = c1.text_input("Sequence column", key="data_seq_col",
                            placeholder=f"{found_seq} (found)" if found_seq else "found "
                            "automatically",
                            help=IngestOptions.__dataclass_fields__["seq_col"].metadata["help"])
    label_col = c2.text_input("Label column", key="data_label_col",
                              placeholder=f"{found_label} (found)" if found_label else "found "
                              "automatically", help=IngestOptions.
                              __dataclass_fields__["label_col"].metadata["help"])
    task = c3.selectbox("Task", ["auto", *Task], key="data_task",
                        help=IngestOptions.__dataclass_fields__["task"].metadata["help"])

with st.expander("Split", expanded=False):
    method = st.radio("How to split", list(EXPLANATION), key="data_split_method",
                      horizontal=True,
                      format_func=lambda m: {"homology": "Homology-aware (recommended)",
                                             "random": "Random"}[m],
                      help=SplitOptions.__dataclass_fields__["method"].metadata["help"])
    st.caption(EXPLANATION[method])
    identity = None
    if method == "homology":
        custom = st.toggle("Choose the identity threshold", key="data_identity_custom")
        if custom:
            identity = st.slider("Sequences at least this identical stay together", 0.2, 0.95,
                                 0.3, 0.05, key="data_identity", help=SplitOptions.
                                 __dataclass_fields__["identity"].metadata["help"])
        else:
            st.caption("Threshold: 30% identity for proteins, 50% for short peptides.")
    pair_split = st.radio(
        "Pairs of proteins: what the test may share with training", list(PAIR_EXPLANATION)[:3],
        key="data_pair_split", horizontal=True,
        format_func=lambda k: {"both_unseen": "Both partners unseen (recommended)",
                               "one_unseen": "One partner unseen",
                               "random": "Random pairs"}[k],
        help=SplitOptions.__dataclass_fields__["pairs"].metadata["help"])
    st.caption(PAIR_EXPLANATION[pair_split] + " (Pair datasets only.)")



def name_classes(label_names: list[str]) -> None:
    """Words for classes coded as 0/1 or abbreviations: the dataset is read again with them,
    so the model, its card and its predictions use them."""
    given = dict(state.get("data_class_names", ()))
    code_of = {name: code for code, name in given.items()}
    codes = [code_of.get(name, name) for name in label_names]
    with st.expander("Name the classes", expanded=False):
        st.caption("The model, its card and its predictions call the classes by these names.")
        with st.form("data_class_form", enter_to_submit=False):
            columns = st.columns(min(4, len(codes)))
            entered = [columns[i % len(columns)].text_input(
                f"Class {md_text(code)}", given.get(code, code),  # labels are Markdown
                key=f"data_class_{i}")
                for i, code in enumerate(codes)]
            if st.form_submit_button("Use these names"):
                state["data_class_names"] = tuple(
                    (code, name.strip()) for code, name in zip(codes, entered)
                    if name.strip() and name.strip() != code)
                st.rerun()


source = state.get("data_source")
payload: Path | UploadedFile | list[tuple[str, bytes]] | None
name: str | None
origin: str | None
beside: dict = {}  # the FLIP layout's label (and mask) files of an example
listed = (sniff_pairs_upload([(f.name, f.getvalue()) for f in pair_files])
          if source == "pairs" and pair_files and len(pair_files) == 2 else None)
if source == "flip" and flip_files and not 2 <= len(flip_files) <= 3:
    st.warning(f"The FLIP / biotrainer layout is 2 or 3 files (sequences, labels, optionally "
               f"a mask); {len(flip_files)} are here: " + (
                   "add the labels file." if len(flip_files) < 2 else
                   "remove the ones that do not belong."))
    payload = name = origin = None
elif source == "flip" and flip_files and not flip_name.strip():
    st.info("Name this dataset (under the files) to read it: its searches and models are "
            "called by that name.")
    payload = name = origin = None
elif source == "flip" and flip_files:  # the FLIP layout: read in any order, named by the user
    payload = [(f.name, f.getvalue()) for f in flip_files]
    name = f"{flip_name.strip()}.fasta"
    origin = "flip:" + ",".join(sorted(f.file_id for f in flip_files)) + f":{name}"
elif source == "pairs" and pair_files and len(pair_files) != 2:
    st.warning(f"Pairs listed by ID are 2 files (the pairs and the proteins' FASTA); "
               f"{len(pair_files)} are here: " + (
                   "add the other one." if len(pair_files) < 2 else
                   "remove the ones that do not belong."))
    payload = name = origin = None
elif source == "pairs" and pair_files and listed is None:
    st.warning("Of the two files, one must be the proteins' FASTA (records starting with "
               "'>ID') and the other the pairs table (protein_1, protein_2, label).")
    payload = name = origin = None
elif source == "pairs" and listed is not None:  # read in any order: the FASTA starts with '>'
    payload, name = list(listed), listed[0][0]
    origin = "pairs:" + ",".join(sorted(f.file_id for f in pair_files))
elif source == "upload" and isinstance(upload, UploadedFile):
    payload, name, origin = upload, upload.name, f"upload:{upload.file_id}"
elif source == "example":
    payload, name = EXAMPLES[example].path, EXAMPLES[example].file
    beside = EXAMPLES[example].sources
    if beside:  # stored under the example's name, not its sequence file's
        name = f"{example}.fasta"
    origin = f"example:{example}"
    st.caption(f"{EXAMPLES[example].description} Source: {EXAMPLES[example].licence}.")
else:
    payload = name = origin = None

if payload is not None:
    try:
        options = IngestOptions(seq_col=seq_col or None, label_col=label_col or None,
                                task=task, fixes=frozenset(state["data_fixes"]),
                                class_names=tuple(state.get("data_class_names", ())))
    except ValueError as exc:  # two classes given one name: keep the names that worked
        st.error(md_sentence(exc))
        state["data_class_names"] = ()
        st.stop()
    split_options = SplitOptions(method=method, identity=identity, pairs=pair_split)
    key = (origin, options, split_options)
    if state.get("data_outcome", (None,))[0] != key:  # once per upload and choice, not per rerun
        bar = st.empty()

        def progress(message: str, fraction: float) -> None:
            bar.progress(fraction, text=f"{message[:1].upper()}{message[1:]}...")

        outcome: ImportOutcome | DataFileError | StorageError
        try:
            outcome = import_dataset(payload, name=name, options=options, store=store,
                                     split_options=split_options, progress=progress,
                                     owner=user, **beside)
        except DataFileError as exc:
            outcome = exc
        except OSError as exc:  # full or read-only disk: said, and tried again on the next run
            if (problem := storage_problem(exc)) is None:
                raise
            outcome = problem
        bar.empty()
        state["data_outcome"] = (None if isinstance(outcome, StorageError) else key, outcome)
    outcome = state["data_outcome"][1]
    if isinstance(outcome, (DataFileError, StorageError)):
        st.error(md_text(outcome))
    else:
        if outcome.result.columns != state.get("data_columns", (None, None)):
            state["data_columns"] = outcome.result.columns
            st.rerun()  # once: the boxes above show what was found
        if any(outcome.result.columns):
            st.caption("Read the sequences from column **{}** and the labels from **{}** "
                       "(change them under *Columns and task*).".format(
                           *(md_text(c or "none") for c in outcome.result.columns)))
        fix = render.problems(outcome.result, key="data")
        if fix:
            state["data_fixes"] = [*state["data_fixes"], fix]
            st.rerun()
        stored, dataset = outcome.stored, outcome.dataset
        if outcome.ok and stored is not None and dataset is not None:
            st.success(f"**{md_text(stored.name)}** is ready and stored in the workspace "
                       f"(id {stored.id}).")
            render.dataset_overview(dataset, outcome.notes)
            if dataset.label_names and not dataset.task.per_residue:
                name_classes(dataset.label_names)

st.subheader("Stored datasets")
records = store.list()
render.stored_datasets(records)
mine = [r for r in records if user and user.may_change(r.owner)]
if mine:
    with st.expander("Delete a dataset"):
        doomed = st.selectbox("Dataset", mine, format_func=lambda r: f"{r.title}, id {r.id}",
                              key="data_delete_choice",
                              help="Only datasets you stored (or any, for an admin). Searches "
                              "already run keep their results and models.")
        if st.button("Delete", key="data_delete") and user:
            try:
                engine.job_manager(resources.workspace()).delete_dataset(doomed.id, user)
            except (PermissionError, ValueError) as exc:
                st.error(md_sentence(exc))
            else:
                state.pop("data_outcome", None)  # its "stored" message would be stale
                st.rerun()
