import streamlit as st

from nas_core.common.report import load_report
from nas_core.common.tasks import Task
from nas_core.common.text import md_sentence, md_text
from nas_core.data.pairs import read_pair_list
from nas_core.data.reading import FASTA_UPLOAD_TYPES, UPLOAD_TYPES, DataFileError
from nas_core.design.config import GOALS, RULES, SuggestConfig
from nas_core.design.suggest import SuggestError, model_dir_of, suggest
from nas_core.runtime.jobtable import JobKind
from ui import engine, render, resources
from ui.identity import current_user
from ui.sequences_input import sequences_input

help_for = {name: f.metadata["help"] for name, f in SuggestConfig.__dataclass_fields__.items()}
RULE_NAMES = {"ei": "Expected improvement", "ucb": "Upper confidence bound",
              "thompson": "Thompson sampling", "greedy": "Prediction only"}

st.title("Test these next")
st.caption("Upload the candidate sequences you could make (variants, designs), say what you "
           "are looking for, and get a ranked batch to make and measure: the finished "
           "search's ensemble predicts each candidate, its members' disagreement says how "
           "sure it is, and an acquisition rule balances the two. When the measurements come "
           "back, add them below and the search runs again on the larger dataset.")
root = resources.workspace()
manager = engine.job_manager(root)
user = current_user()
finished = [j for j in manager.jobs() if j.kind is JobKind.SEARCH and j.report_path.is_file()]
if not finished:
    st.info("No finished search yet: run one on your measured sequences first (Data, then "
            "Search). Its models rank the candidates here.")
    st.stop()
job_id = st.selectbox("Search", [j.id for j in finished], key="suggest_job",
                      format_func=lambda i: next(f"{j.study_name} ({j.owner_shown})"
                                                 for j in finished if j.id == i))
job = next(j for j in finished if j.id == job_id)
report = load_report(job.out_dir)
try:
    directory = model_dir_of(job.out_dir)
except SuggestError as exc:
    st.info(md_sentence(exc))
    st.stop()
if report is None:
    st.info("This search's report could not be read: finalise it again from Monitor.")
    st.stop()
if report.task.per_residue:
    st.info("This search predicts per residue: 'test these next' ranks whole sequences, so it "
            "needs a search with one label per sequence.")
    st.stop()
if directory.name == "ensemble_model":
    members = report.ensemble.members if report.ensemble else []
    st.caption(f"Ranking with the ensemble of {len(members)} "
               "architectures: its spread is each candidate's uncertainty.")
else:
    st.warning("This search has no ensemble, so there is no uncertainty to explore with: "
               "candidates are ranked by prediction alone. Search again with an ensemble "
               "size of 2 or more (Search, Advanced) for the acquisition rules to matter.")

pairs = report.task.per_pair
if pairs:
    st.caption("This model ranks **pairs of proteins**: give the candidate pairs as a table with "
               "two sequence columns (sequence_1, sequence_2), or upload a pairs file of "
               "protein IDs with the proteins' FASTA below.")
candidates = sequences_input("suggest", "candidates", height=140)
proteins = (st.file_uploader("The proteins' FASTA (pairs listed by ID)",
                             type=FASTA_UPLOAD_TYPES, key="suggest_proteins")
            if pairs else None)
c1, c2 = st.columns(2)
classes = list(report.dataset.summary.classes or {})
target_class = None
if report.task.label_kind == Task.REGRESSION:
    goal = c1.radio("Goal", ["maximize", "minimize"], key=f"suggest_goal_{job_id}",
                    format_func=lambda g: GOALS[g].capitalize(), horizontal=True)
else:
    goal = "class"
    target_class = c1.selectbox("Find sequences of the class", classes,
                                key=f"suggest_class_{job_id}",  # the classes of this model
                                help=help_for["target_class"])
rule = c2.radio("Acquisition rule", list(RULES), key="suggest_rule",
                format_func=lambda r: RULE_NAMES[r], help=help_for["rule"])
c2.caption(RULES[rule])
batch = c1.number_input("Batch size", 1, 10_000, 20, key="suggest_batch",
                        help=help_for["batch"])
diversity = c2.slider("Diversity penalty", 0.0, 1.0, 0.5, 0.05, key="suggest_diversity",
                      help=help_for["diversity"])

if st.button("Rank the candidates", type="primary", key="suggest_go"):
    st.session_state.pop("suggest_result", None)
    try:
        raw = (read_pair_list((candidates.upload.name, candidates.upload.getvalue()),
                              (proteins.name, proteins.getvalue()), require_label=False)
               if proteins is not None and candidates.upload is not None
               else candidates.read())
        config = SuggestConfig(batch=int(batch), goal=goal, target_class=target_class,
                               rule=rule, diversity=float(diversity))
        with st.spinner("Loading the models..."):
            predictor = engine.predictor(str(directory),
                                            (directory / "model.safetensors").stat().st_mtime)
        bar = st.progress(0.0, text="Predicting the candidates...")
        result = suggest(job.out_dir, raw, config, predictor=predictor,
                         progress=lambda done, total: bar.progress(
                             done / total, text=f"Predicting: {done}/{total}"))
        bar.empty()
    except (SuggestError, DataFileError, ValueError) as exc:
        st.error(md_sentence(exc))
    else:
        st.session_state["suggest_result"] = (job.id, result.frame, result.notes)

if st.session_state.get("suggest_result", (None,))[0] == job.id:
    _, frame, notes = st.session_state["suggest_result"]
    for note in notes:
        st.info(md_text(note))
    st.success(f"{len(frame)} candidate(s) to make and measure next, best first.")
    render.suggestion(frame)
    st.download_button("Download the batch as CSV", frame.to_csv(index=False).encode(),
                       file_name=f"{job.study_name}-next-batch.csv", mime="text/csv",
                       key="suggest_download")

st.subheader("The measurements came back")
if pairs:
    st.caption("For pairs of proteins, upload the extended pairs on the Data page: a pair "
               "split keeps whole proteins apart, so the dataset is split anew.")
    st.stop()
st.caption("Upload the measured sequences with their labels (the same columns as your "
           "training data). They are added to this search's dataset as a new dataset that "
           "names its parent; validation and test sequences stay as they were, and a new "
           "search starts from this one's best architectures.")
measured = st.file_uploader("Measured sequences with labels", key="suggest_measured",
                            type=UPLOAD_TYPES)
allowed = user is not None and user.may_change(job.owner)
if st.button("Add them and search again", key="suggest_next_round",
             disabled=not measured or not allowed,
             help=None if allowed else "Only the person who ran this search, or an admin, "
             "can."):
    assert measured is not None and user is not None
    try:
        with st.spinner("Checking the measurements and placing them in the splits..."):
            extension, new_job = manager.next_round(job.id, measured.getvalue(),
                                                    measured.name, user)
    except (ValueError, KeyError, PermissionError) as exc:
        st.error(md_sentence(exc))
    else:
        if new_job is None:
            st.error(f"Nothing was added: {len(extension.problems)} problem(s) to fix in the "
                     "file first.")
            st.markdown("\n".join(f"- {md_text(p.message)}" for p in extension.problems[:50]))
        else:
            for note in extension.notes:
                st.info(md_text(note))
            stored = extension.stored
            assert stored is not None  # a job is queued only for a stored extension
            st.success(f"Dataset {md_text(stored.name)} "
                       f"({stored.n_sequences} sequences) stored; search "
                       f"{md_text(new_job.study_name)} queued. Follow it on the Monitor page.")
