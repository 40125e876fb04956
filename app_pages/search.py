import time

import streamlit as st

from nas_core.backbones.download import gigabytes
from nas_core.backbones.registry import BackboneUnavailable
from nas_core.common.text import md_sentence, md_text
from nas_core.runtime.jobtable import JobState
from nas_core.search.config import (
    DEFAULT_ENSEMBLE_SIZE,
    OBJECTIVES,
    PRUNERS,
    SAMPLERS,
    STRATEGIES,
    SearchConfig,
)
from nas_core.search.presets import (
    QUICK_SECONDS,
    fit_to_time,
    gpu_memory_gb,
    is_available,
    offered_backbones,
    presets,
    strategy_advice,
)
from nas_core.search.throughput import Estimate, Throughput, estimate
from nas_core.views.monitor import format_eta
from ui import engine, resources
from ui.identity import current_user, mode
from ui.space_form import space_editor

st.title("Search")
root = resources.workspace()
store = resources.dataset_store(root)
manager = engine.job_manager(root)
user = current_user()
help_for = {name: f.metadata["help"] for name, f in SearchConfig.__dataclass_fields__.items()}

records = store.list()
if not records:
    st.info("Add a dataset first.")
    st.page_link("app_pages/data.py", label="Go to Data", icon=":material/table_view:")
    st.stop()
# The choice outlives the widget (Streamlit forgets a widget's state on other pages): kept by id
ids = [r.id for r in records]
chosen = st.session_state.get("search_dataset_id")
record = st.selectbox("Dataset", records, format_func=lambda r: r.title,
                      index=ids.index(chosen) if chosen in ids else 0,
                      key="search_dataset")
st.session_state["search_dataset_id"] = record.id

gpu = gpu_memory_gb()
offered = offered_backbones(gpu, root)
st.caption(f"Device: {f'GPU with {gpu:.0f} GB' if gpu else 'CPU only (no GPU found)'}; "
           "only backbones that fit are offered.")
available = [name for name, spec in offered.items() if is_available(spec)]


def _label(name: str) -> str:
    spec = offered[name]
    return spec.label + ("" if name in available else " — not downloaded yet")


backbones = st.multiselect("Backbones", list(offered), default=available[:1],
                           format_func=_label, key="search_backbones",
                           help="ESM-2 protein language models to build on. Where none is "
                           "downloaded, the small backbone pretrained here on public "
                           "proteomes is the default (a stand-in for ESM-2, not a "
                           "substitute); the untrained demo has random weights, a negative "
                           "control that shows the pipeline, not what a backbone brings.")
if not backbones:
    st.warning("Choose at least one backbone.")
    st.stop()
downloads = resources.downloads()
missing = [b for b in backbones if b not in available]
may_download = bool(user and (user.admin or mode() == "local"))  # the server's disk


@st.fragment(run_every=1 if downloads.active() else None)
def download_panel() -> None:
    for name in missing:
        spec, state = offered[name], downloads.state(name)
        if state is not None and state.finished:
            st.rerun(scope="app")  # now available: offered as downloaded
        if state is not None and state.active:
            total = gigabytes(state.total) if state.total else "..."
            st.progress(state.fraction, text=f"Downloading {spec.label}: "
                        f"{gigabytes(state.done)} of {total}")
            continue
        if state is not None and state.error:
            st.error(md_text(state.error))
        size = gigabytes(int(spec.n_parameters * 4))
        if not may_download:
            st.caption(f"{md_text(spec.label)} is not downloaded yet (about {size}): ask the "
                       "administrator to download it.")
        elif st.button(f"Download {spec.label} (about {size})", key=f"search_download_{name}",
                       help="Into the server's Hugging Face cache, with progress; an "
                       "interrupted download continues where it stopped."):
            downloads.start(name)
            st.rerun(scope="app")  # the panel refreshes itself while it downloads


if missing:
    download_panel()
    st.warning("Download the backbones marked 'not downloaded yet' before starting: a trial "
               "would otherwise fetch them itself, without progress.")
dataset = store.load(record.id)
kind = "cuda" if gpu else "cpu"
throughput = Throughput(root)
lengths = dataset.frame["sequence"].str.len()
if dataset.pairs:  # a pair model reads both partners
    lengths = lengths + dataset.frame["sequence_2"].str.len()
sizes = (len(dataset.part("train")), len(dataset.part("valid")), float(lengths.mean()))


measurer = engine.measurements()


def estimate_for(space, n: int, frozen_first: int = 0) -> Estimate:
    """Known speeds, or a rough guess while they are measured in the background."""
    return estimate(space, n, *sizes, kind, throughput, measure_missing=False,
                    frozen_first=frozen_first)


def measure(*spaces) -> None:
    """Time what the estimates below still guess, off the page's thread."""
    for space in spaces:
        estimate(space, 1, *sizes, kind, throughput, measure_missing=True)


choices = presets(tuple(backbones))
try:
    choices["Quick"], quick_estimate = fit_to_time(choices["Quick"], estimate_for,
                                                   QUICK_SECONDS[kind])
except (ValueError, BackboneUnavailable) as exc:
    st.error(md_sentence(exc))
    st.stop()
preset_name = st.radio("Preset", list(choices), index=0, horizontal=True, key="search_preset",
                       help="How much to explore; Advanced below changes any detail.")
preset = choices[preset_name]
st.caption(preset.description)
# every default below depends on the dataset and the preset (and Quick on the measured
# speed): keyed to them, a widget never keeps a value chosen for another dataset or preset
defaults_key = (f"{record.id}_{preset_name}_{preset.n_trials}_{preset.frozen_first}_"
                f"{preset.space.max_epochs_range[1]}")
c1, c2 = st.columns(2)
n_trials = c1.number_input("Trials", 1, 1000, preset.n_trials,
                           key=f"search_trials_{defaults_key}", help=help_for["n_trials"])
minutes = c2.number_input("Time limit in minutes (0 = none)", 0, 10_000, 0,
                          key="search_minutes", help=help_for["timeout"])

with st.expander("Advanced"):
    st.markdown("**Search strategy**")
    st.caption("How the search chooses the next architecture to try, when it gives up on one, "
               "and what it hands over at the end.")
    c1, c2, c3 = st.columns(3)
    # DARTS trains one super-network on single sequences: not offered for pairs
    sampler = c1.selectbox("Strategy", [s for s in SAMPLERS if s != "darts" or not
                                        dataset.task.per_pair], key="search_sampler",
                           format_func=lambda s: STRATEGIES[s], help=help_for["sampler"])
    pruner = c2.selectbox("Pruner", PRUNERS, key="search_pruner", help=help_for["pruner"])
    objective = c3.selectbox("Objectives", OBJECTIVES, key="search_objective",
                             help=help_for["objective"])
    seed = c1.number_input("Seed", 0, 2**31 - 1, 0, key="search_seed", help=help_for["seed"])
    ensemble_size = c2.number_input("Ensemble of the best (1 = none)", 1, 20,
                                    DEFAULT_ENSEMBLE_SIZE,
                                    key="search_ensemble", help=help_for["ensemble_size"])
    frozen_first = c3.number_input(
        "Frozen-backbone trials first", 0, 1000, preset.frozen_first,
        key=f"search_frozen_first_{defaults_key}", help=help_for["frozen_first"])
    advice = strategy_advice()
    if advice:
        st.caption(advice)
    try:
        space = space_editor(preset.space, key=f"adv_{defaults_key}",
                             per_residue=dataset.task.per_residue,
                             pairs=dataset.task.per_pair)
        if "frozen" not in space.adaptations:
            frozen_first = 0  # nothing frozen to try first
    except ValueError as exc:
        st.error(f"Search space: {md_text(exc)}")
        st.stop()

workers: int | None = 1
gpus = [d for d in manager.devices if d.startswith("cuda")]
if len(gpus) > 1:
    spread = st.toggle(f"Use every free GPU for this search ({len(gpus)} here)", value=True,
                       key="search_all_gpus", help=help_for["workers"])
    workers = None if spread else 1

study_name = st.text_input("Study name", f"{record.name}-{time.strftime('%Y%m%d-%H%M')}",
                           key=f"search_study_{record.id}",  # follows the dataset chosen
                           help=help_for["study_name"])
try:
    config = SearchConfig(study_name=study_name, space=space, n_trials=int(n_trials),
                          timeout=minutes * 60 or None, sampler=sampler, pruner=pruner,
                          objective=objective, seed=int(seed),
                          ensemble_size=int(ensemble_size), workers=workers,
                          frozen_first=min(int(frozen_first), int(n_trials)))
    space.usable_backbones()
except (ValueError, BackboneUnavailable) as exc:
    st.error(md_sentence(exc))
    st.stop()

expected = estimate(space, int(n_trials), *sizes, kind, throughput, measure_missing=False,
                    min_tokens=config.min_batch_tokens, frozen_first=config.frozen_first)
measuring = f"{root}|{sizes}|{kind}|{config.min_batch_tokens}|{space}|{choices['Quick'].space}"
if expected.pending or quick_estimate.pending:
    measurer.start(measuring, lambda: measure(choices["Quick"].space, space))
st.info(f"Estimated run time on this machine: {format_eta(expected.low)} to "
        f"{format_eta(expected.high)}, about {format_eta(expected.per_trial)} per full trial"
        + (f" (stops after {minutes} min at most)" if minutes else "") + "."
        + ("" if expected.measured or expected.pending else " Rough: a backbone not "
           "downloaded yet cannot be timed, so its speed is guessed from its size."))


@st.fragment(run_every=1 if measurer.running(measuring) else None)
def measuring_note() -> None:
    """While the speed is measured: say so; when it is known, draw the page again with it."""
    if measurer.running(measuring):
        st.caption(":material/timer: Measuring how fast this machine trains these backbones "
                   "(once, a few seconds): the estimates above are rough until then.")
    elif (expected.pending or quick_estimate.pending) and \
            st.session_state.get("search_measured") != measuring:
        st.session_state["search_measured"] = measuring  # once: a failed measurement stays rough
        st.rerun(scope="app")


measuring_note()

if user and user.admin or mode() == "local":  # server paths and commands: for who runs it
    with st.expander("For the administrator: more machines for this search"):
        st.caption(f"Studies are stored in `{manager.storage}`. More GPU machines can join a "
                   f"running search: `python -m nas_core worker --study {study_name}` with "
                   "ESM_NAS_STORAGE set to this database (see docs/deployment.md).")
if not (user and user.name):
    st.warning("Enter your name in the sidebar to start a search.")
if st.button("Start", type="primary", disabled=not (user and user.name), key="search_start") \
        and user:
    try:
        job = manager.submit(config, record.id, user)
    except ValueError as exc:
        st.error(md_sentence(exc))
    else:
        where = "running" if job.state is JobState.RUNNING else \
            f"queued (position {job.queue_position})"
        st.success(f"Job {job.id} for study '{md_text(job.study_name)}' is {where}. Follow "
                   "it live on the Monitor page.")
        st.page_link("app_pages/monitor.py", label="Open Monitor", icon=":material/monitoring:")
