import streamlit as st

from nas_core.backbones.registry import BackboneUnavailable
from nas_core.common.text import md_sentence, md_text
from nas_core.data.reading import UPLOAD_TYPES
from nas_core.pretraining.config import PretrainConfig
from nas_core.pretraining.corpus import CorpusError
from nas_core.search.presets import gpu_memory_gb, is_available, offered_backbones
from nas_core.views.monitor import format_eta
from ui import engine, render, resources
from ui.identity import current_user

help_for = {name: f.metadata["help"] for name, f in PretrainConfig.__dataclass_fields__.items()}

st.title("Teach a backbone your proteins")
st.caption("Continued masked-language-model pretraining (as ESM-2 itself was trained) on your "
           "own unlabelled sequences: the backbone reads your family before it learns your "
           "labels, which often helps when your proteins are far from what it saw (Biswas et "
           "al., Nat Methods 2021; Gururangan et al., ACL 2020). The new backbone appears on "
           "the Search page beside its parent, so a search can decide whether it helped.")
root = resources.workspace()
store = resources.dataset_store(root)
manager = engine.job_manager(root)
user = current_user()

offered = offered_backbones(gpu_memory_gb(), root)
available = [name for name, spec in offered.items() if is_available(spec)]
base = st.selectbox("Backbone to continue", available, format_func=lambda n: offered[n].label,
                    key="pretrain_base", help=help_for["base"])
source = st.radio("Sequences", ["A stored dataset (labels ignored)", "Upload a file"],
                  horizontal=True, key="pretrain_source")
dataset_id = upload = None
records = store.list()
if source.startswith("A stored"):
    if not records:
        st.info("No dataset stored yet: upload sequences instead, or add a dataset on Data.")
        st.stop()
    record = st.selectbox("Dataset", records, format_func=lambda r: r.title,
                          key="pretrain_dataset")
    dataset_id = record.id
    st.caption("Its training and validation sequences are used; its test sequences are left "
               "out, so a later search's held-out score stays honest.")
    default_name = f"{offered[base].name}-{record.name}"[:64]
else:
    upload = st.file_uploader("Unlabelled protein sequences", type=UPLOAD_TYPES,
                              key="pretrain_upload", help="FASTA (optionally .gz), CSV, TSV "
                              "or Excel; a table's labels are ignored.")
    default_name = f"{offered[base].name}-mine"
c1, c2 = st.columns(2)
tokens = c1.number_input("Budget (tokens)", 10_000, 10_000_000_000, 2_000_000, step=500_000,
                         key="pretrain_tokens", help=help_for["tokens"])
name = c2.text_input("Name of the new backbone", default_name, key=f"pretrain_name_{base}",
                     help="A folder name: letters, digits, '.', '_' and '-'.")
try:
    config = PretrainConfig(base=base, tokens=int(tokens))
    speed = engine.pretraining_speed(base, config.max_length, config.batch_tokens)
    st.caption(f"Measured on this machine: about {speed:,.0f} tokens per second, so this "
               f"budget takes about {format_eta(tokens / speed)} (plus a minute or two to hold "
               "out validation proteins by homology and to measure the curve).")
except (ValueError, BackboneUnavailable) as exc:
    st.error(md_sentence(exc))
    st.stop()
if st.button("Start", type="primary", key="pretrain_start",
             disabled=user is None or (dataset_id is None and upload is None)) and user:
    try:
        job = manager.submit_pretrain(config, name, user, dataset_id=dataset_id,
                                      upload=upload.getvalue() if upload else None,
                                      upload_name=upload.name if upload else "corpus.fasta")
    except (ValueError, CorpusError, PermissionError) as exc:
        st.error(md_sentence(exc))
    else:
        st.success(f"Job {job.id} teaches '{md_text(job.pretrain_request.name)}'; follow its "
                   "held-out perplexity on the Monitor page.")
        st.page_link("app_pages/monitor.py", label="Go to Monitor",
                     icon=":material/monitoring:")

st.subheader("Backbones made here")
render.made_backbones({n: s for n, s in offered.items() if s.lineage is not None})
