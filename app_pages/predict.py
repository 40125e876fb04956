import streamlit as st

from nas_core.common.metric_names import metric_name
from nas_core.common.text import md_sentence, md_text
from nas_core.data.pairs import read_pair_list
from nas_core.data.reading import FASTA_UPLOAD_TYPES, DataFileError
from nas_core.publishing.predict import PredictionInputError, resolve_model_dir
from nas_core.views.results import results_dir, workspace_models
from ui import engine, render, resources
from ui.sequences_input import sequences_input

MODES = {"table": "sequences (or a table of pairs)", "listed": "the pairs file (IDs)",
         "screen": "the candidates"}

st.title("Predict")
root = resources.workspace()
hub_token = None
models = workspace_models(root)
source = st.radio("Model", ["From this workspace", "From the Hugging Face Hub"],
                  horizontal=True, key="predict_source",
                  index=0 if models else 1)
if source == "From this workspace":
    if not models:
        st.info("No model in the workspace yet: run a search first, or use a Hub model.")
        st.stop()
    label = st.selectbox("Model", list(models), key="predict_model")
    model_ref = str(models[label])
else:
    model_ref = st.text_input("Hub repository id", placeholder="your-lab/enzyme-classifier",
                              key="predict_repo", help="A model published by ESM-NAS Studio.")
    hub_token = st.text_input(
        "Your Hugging Face token (private repositories only)", type="password",
        key="predict_token", help="Used for this download only, never stored. Public "
        "repositories need none; the server's own credentials are never used for you.")
    if not model_ref:
        st.stop()

mode = st.radio("What to predict", list(MODES), key="predict_mode", horizontal=True,
                format_func={"table": "Sequences, or pairs in two columns",
                             "listed": "Pairs listed by ID (pair models)",
                             "screen": "One protein against many (pair models)"}.get,
                help="Pair models read two proteins: a table with two sequence columns "
                "(sequence_1, sequence_2), pairs listed by protein ID with the proteins' "
                "FASTA, or one protein screened against many candidates.")
bait = proteins = None
if mode == "screen":
    bait = st.text_input("The protein to screen (its sequence, or the ID of one of the "
                         "candidates below)", key="predict_bait")
sequences = sequences_input("predict", what=MODES[mode])
if mode == "listed":
    proteins = st.file_uploader("The proteins' FASTA (its headers are the IDs of the pairs "
                                "file)", type=FASTA_UPLOAD_TYPES, key="predict_proteins")
if st.button("Predict", type="primary", key="predict_go"):
    st.session_state.pop("predict_result", None)
    try:
        if mode == "listed" and (sequences.upload is None or proteins is None):
            raise ValueError("Upload the pairs file (in 'Upload a file') and the proteins' "
                             "FASTA.")
        if mode == "screen" and not (bait or "").strip():
            raise ValueError("Give the protein to screen: its sequence, or its ID.")
        raw = (read_pair_list((sequences.upload.name, sequences.upload.getvalue()),
                              (proteins.name, proteins.getvalue()), require_label=False)
               if mode == "listed" and proteins is not None and sequences.upload is not None
               else sequences.read())
        with st.spinner("Loading the model..."):
            # local paths only inside the workspace; Hub downloads with the visitor's token
            directory = resolve_model_dir(model_ref, token=hub_token or None,
                                          server_token=False, local_roots=[results_dir(root)],
                                          root=root)
            version = (directory / "model.safetensors").stat().st_mtime
            predictor = engine.predictor(str(directory), version)
        bar = st.progress(0.0, text="Predicting...")

        def progress(done: int, total: int) -> None:
            bar.progress(done / total, text=f"{done}/{total}")

        if mode == "screen" and bait is not None:
            frame, problems, metrics = predictor.screen_table(bait, raw, progress=progress), \
                [], None
        else:
            frame, problems, metrics = predictor.predict_table(raw, progress=progress)
        bar.empty()
    except PredictionInputError as exc:
        st.error(f"{len(exc.problems)} sequence(s) cannot be used; nothing was predicted:")
        st.markdown("\n".join(f"- {md_text(p.message)}" for p in exc.problems[:50]))
    except (DataFileError, FileNotFoundError, ValueError) as exc:
        st.error(md_sentence(exc))
    else:
        # kept for this browser session, so sorting or downloading does not lose it
        st.session_state["predict_result"] = (model_ref, frame, problems, metrics,
                                              predictor.info, predictor.verdict)

if "predict_result" in st.session_state:
    used, frame, problems, metrics, info, verdict = st.session_state["predict_result"]
    render.verdict_box(verdict)
    for p in problems:
        st.warning(md_text(p.message))
    per_residue = "position" in frame
    if per_residue:
        st.success(f"Predictions for {frame['id'].nunique()} sequence(s), one row per residue "
                   f"({len(frame):,} rows), with {md_text(used)}.")
    else:
        st.success(f"{len(frame)} prediction(s) with {md_text(used)}.")
    if metrics:
        st.caption("Against the labels in your file: " + ", ".join(
            f"{metric_name(k)} {v:.3f}" for k, v in metrics.items() if v is not None))
    if "known_label" in frame:
        known = int(frame["known_label"].notna().sum())
        st.caption(f"**known_label**: {known} sequence(s) here are in the model's training "
                   "data; this is the label measured for them, beside what the model predicts.")
    if "rank" in frame:
        st.caption("**rank**: the candidates as likely partners of the screened protein, most "
                   "likely (or highest value) first.")
    if "unlike_training_2" in frame:
        st.caption("**unlike_training** / **unlike_training_2**: the first / second partner is "
                   "below the model's novelty threshold of identity to every training protein "
                   "(MMseqs2; **nearest_train_identity** and **..._2** give the identity): a "
                   "prediction for a new protein is an extrapolation.")
    elif "unlike_training" in frame:
        flags = frame.groupby("id")["unlike_training"].first() if per_residue else \
            frame["unlike_training"]
        st.caption(f"**nearest_train_identity**: identity to the most similar training sequence "
                   f"(MMseqs2). **unlike_training**: below the model's novelty threshold, so "
                   f"the prediction is an extrapolation ({int(flags.sum())} of {len(flags)} "
                   "sequences here" + ("; given on each of the sequence's rows)." if per_residue
                                       else ")."))
    if "uncertainty" in frame:
        st.caption("**uncertainty**: how much the ensemble's members disagree (standard "
                   "deviation of the value, or of the predicted class's probability): high "
                   "where the data did not settle the answer. The conformal columns beside it "
                   "give the range or classes to expect.")
    if any(c.startswith(("set_", "low_")) for c in frame.columns):
        st.caption("**set_90%** / **low_90%–high_90%**: the classes or the range that hold the "
                   "true value for 90% of sequences like the validation set (split-conformal, "
                   "calibrated on the validation split); a set with one class is a confident "
                   "call.")
    if per_residue:
        render.residue_track(frame, info.task, info.label_names)
    st.dataframe(frame, hide_index=True, width="stretch", key="predict_table")
    st.download_button("Download as CSV", frame.to_csv(index=False).encode(),
                       file_name="predictions.csv", mime="text/csv", key="predict_download")
