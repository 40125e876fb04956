"""Background searches owned by the server process, not by a browser session.

One job runs per device (one in total on a CPU machine); the others wait in a queue. After a
server restart, jobs whose process is gone show as *interrupted*, their half-run trials are
marked failed, and Resume continues them."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import optuna
import torch

from nas_core.common.access import Person, check_owner
from nas_core.common.workspace import storage_problem, subdir, workspace_root
from nas_core.compression.compress import CompressCancelled, compress
from nas_core.compression.config import CompressConfig, estimated_seconds, planned
from nas_core.data.dataset import Dataset
from nas_core.data.extend import Extension, extend_dataset
from nas_core.data.store import DatasetStore
from nas_core.modeling.training import TrainingCancelled
from nas_core.pretraining.config import PretrainConfig, PretrainRequest, check_backbone_name
from nas_core.pretraining.corpus import CorpusError, read_corpus
from nas_core.pretraining.progress import StudyProgress
from nas_core.pretraining.run import pretrain
from nas_core.runtime.jobtable import Job, JobKind, JobState, JobTable
from nas_core.runtime.launch import run_search
from nas_core.search.budget import retryable
from nas_core.search.optuna_internals import set_trial_user_attr
from nas_core.search.storage import configured_url, make_storage, requeue

logger = logging.getLogger(__name__)
_LIVE: set[str] = set()  # job ids with a running thread in this process
_LIVE_LOCK = threading.Lock()


def compress_estimate(source: Job, config: CompressConfig) -> float | None:
    report = source.report()
    return None if report is None else estimated_seconds(report, config)


def next_round_name(name: str, taken: set[str]) -> str:
    """``enzymes`` -> ``enzymes-round2`` -> ``enzymes-round3``, skipping names in use."""
    match = re.fullmatch(r"(.*)-round(\d+)", name)
    stem, n = (match.group(1), int(match.group(2)) + 1) if match else (name, 2)
    while f"{stem}-round{n}" in taken:
        n += 1
    return f"{stem}-round{n}"


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def default_devices() -> list[str]:
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [f"cuda:{i}" for i in range(count)] or ["cpu"]


class JobManager:
    """Runs searches in named daemon threads; create one per server process."""

    def __init__(self, root=None, *, devices: list[str] | None = None,
                 runner: Callable | None = None, storage: str | None = None) -> None:
        """``storage``: the study store new jobs use (a PostgreSQL URL for a lab server;
        default ``$ESM_NAS_STORAGE`` or the workspace's SQLite file)."""
        self.root = workspace_root(root)
        self.storage = configured_url(self.root, secret=storage)
        self.table = JobTable(self.root / "jobs.db")
        self.devices = devices or default_devices()
        self._runner = runner or _run_job
        self._lock = threading.RLock()
        self._busy: dict[str, str] = {}  # device -> job id
        self._stops: dict[str, threading.Event] = {}
        self._done = threading.Condition(self._lock)
        make_storage(self.storage)  # tables exist before any thread runs
        self.recover()
        self._schedule()

    # -- queries ---------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        return list(reversed(self.table.all()))

    def get(self, job_id: str) -> Job:
        for job in self.table.all():
            if job.id == job_id:
                return job
        raise KeyError(f"no job '{job_id}'.")

    # -- commands --------------------------------------------------------------------------
    def submit(self, config, dataset_id: str, owner: Person, *, storage: str | None = None
               ) -> Job:
        """Queue a search (a :class:`~nas_core.search.config.SearchConfig`) on a stored dataset."""
        DatasetStore(self.root).get(dataset_id)  # fail now, not in the thread
        if any(j.study_name == config.study_name and j.state.active for j in self.jobs()):
            raise ValueError(f"a job for study '{config.study_name}' is already queued or "
                             "running.")
        job_id = uuid.uuid4().hex[:10]
        job = Job(id=job_id, study_name=config.study_name, dataset_id=dataset_id,
                  owner=owner.key, owner_name=owner.shown, state=JobState.QUEUED,
                  config=config.to_dict(),
                  storage=storage or self.storage,
                  out_dir=str(subdir("results", self.root) / job_id), created=time.time())
        self.table.insert(job)
        self._schedule()
        return self.get(job_id)

    def submit_compress(self, source_id: str, config: CompressConfig, owner: Person) -> Job:
        """Queue the Compress step of a finished search (its owner or an admin): smaller
        variants of its chosen model, in the background like a search."""
        source = self.get(source_id)
        check_owner(owner, source.owner, source.owner_shown, "search")
        if not source.report_path.is_file():
            raise ValueError("this search has no tested model yet: compress it once it has "
                             "finished (or after 'Test and export the best').")
        if any(j.kind is JobKind.COMPRESS and j.compress_source == source_id
               and j.state.active for j in self.jobs()):
            raise ValueError("a Compress job for this search is already queued or running.")
        job_id = uuid.uuid4().hex[:10]
        job = Job(id=job_id, study_name=f"{source.study_name}-compress-{job_id}",
                  dataset_id=source.dataset_id, owner=owner.key, owner_name=owner.shown,
                  state=JobState.QUEUED, config={"kind": "compress", "source": source_id,
                                          "compress": config.to_dict(),
                                          "n_trials": planned(config),
                                          "estimate_s": compress_estimate(source, config)},
                  storage=source.storage, out_dir=str(Path(source.out_dir) / "compress" / job_id),
                  created=time.time())
        self.table.insert(job)
        self._schedule()
        return self.get(job_id)

    def submit_pretrain(self, config: PretrainConfig, name: str, owner: Person, *,
                        dataset_id: str | None = None, upload: bytes | None = None,
                        upload_name: str = "corpus.fasta") -> Job:
        """Queue teaching a backbone proteins: a stored dataset's own sequences (its training
        and validation splits: the test proteins stay unseen, so the search's held-out score
        stays honest) or an uploaded corpus. The corpus is checked now, not in the thread; the
        new backbone appears under the workspace's backbones/ when the job finishes."""
        name = check_backbone_name(name)
        target = subdir("backbones", self.root) / name
        if target.exists() or any(j.kind is JobKind.PRETRAIN and j.state.active
                                  and j.pretrain_request.name == name for j in self.jobs()):
            raise ValueError(f"a backbone called '{name}' exists already (or is being made): "
                             "choose another name.")
        if (dataset_id is None) == (upload is None):
            raise ValueError("give either a stored dataset or an uploaded file of sequences.")
        job_id = uuid.uuid4().hex[:10]
        corpus = subdir("corpora", self.root) / job_id
        corpus.mkdir(parents=True, exist_ok=True)
        if dataset_id is not None:
            path = corpus / f"{dataset_id}.fasta"
            write_dataset_corpus(DatasetStore(self.root).load(dataset_id), path)
        else:
            path = corpus / Path(upload_name).name
            path.write_bytes(upload or b"")
        try:
            read_corpus(path, ignore_labels=dataset_id is None)
        except CorpusError:
            shutil.rmtree(corpus, ignore_errors=True)
            raise
        request = PretrainRequest(str(path), name, config, dataset_id)
        job = Job(id=job_id, study_name=f"{name}-pretrain-{job_id}",
                  dataset_id=dataset_id or "", owner=owner.key, owner_name=owner.shown,
                  state=JobState.QUEUED, config=request.to_dict(), storage=self.storage,
                  out_dir=str(target), created=time.time())
        self.table.insert(job)
        self._schedule()
        return self.get(job_id)

    def next_round(self, source_id: str, measurements: bytes, name: str, owner: Person
                   ) -> tuple[Extension, Job | None]:
        """The measurements of a suggested batch came back: add them to the search's dataset
        (a new stored dataset naming its parent) and queue the search again on it, as a new
        study that starts from the old one's best architectures. Nothing is queued when the
        measurements have problems."""
        source = self.get(source_id)
        if source.kind is not JobKind.SEARCH:
            raise ValueError("new measurements continue a search, not a Compress job.")
        store = DatasetStore(self.root)
        extension = extend_dataset(store.get(source.dataset_id), measurements, store=store,
                                   name=name, owner=owner)
        if not extension.ok or extension.stored is None:
            return extension, None
        config = source.search_config
        study_name = next_round_name(config.study_name, {j.study_name for j in self.jobs()})
        config = replace(config, study_name=study_name, parent_study=source.study_name)
        return extension, self.submit(config, extension.stored.id, owner,
                                      storage=source.storage)

    def compressions(self, source_id: str) -> list[Job]:
        """Compress jobs of a search, newest first."""
        return [j for j in self.jobs() if j.kind is JobKind.COMPRESS
                and j.compress_source == source_id]

    def cancel(self, job_id: str, user: Person) -> Job:
        """Stop a job: a queued one at once; a running one shows *cancelling* at once and stops
        before its trial's next optimiser step (that trial is given back, finished trials
        stay)."""
        with self._lock:
            job = self.get(job_id)
            check_owner(user, job.owner, job.owner_shown, "job")
            if job.state is JobState.QUEUED:
                self.table.update(job_id, state=JobState.CANCELLED, ended=time.time())
            elif job.state is JobState.RUNNING:
                stop = self._stops.get(job_id)
                if stop is None:
                    raise RuntimeError("this job runs in another server process; cancel it "
                                       "there.")
                stop.set()
                self.table.update(job_id, state=JobState.CANCELLING)
            elif job.state is JobState.CANCELLING:
                pass  # asked already; it stops within one batch
            else:
                raise ValueError(f"job is {job.state}: nothing to cancel.")
        return self.get(job_id)

    def resume(self, job_id: str, user: Person) -> Job:
        with self._lock:
            job = self.get(job_id)
            check_owner(user, job.owner, job.owner_shown, "job")
            if not job.state.can_resume:
                raise ValueError(f"job is {job.state}: only cancelled, interrupted or failed jobs "
                                 "can be resumed.")
            self.table.update(job_id, state=JobState.QUEUED, error=None, ended=None)
        self._schedule()
        return self.get(job_id)

    def retry_failed(self, job_id: str, user: Person) -> int:
        """Run the failed trials' architectures again (each retry takes its failed trial's place
        in the budget)."""

        with self._lock:
            job = self.get(job_id)
            check_owner(user, job.owner, job.owner_shown, "job")
            if job.state.active:
                raise ValueError("wait until the job has stopped, then retry its failed trials.")
            if job.kind is JobKind.COMPRESS:
                raise ValueError("a Compress job has no trials to retry: Resume runs it again.")
            study = optuna.load_study(study_name=job.study_name,
                                      storage=make_storage(job.storage, self.root))
            failed = retryable(study.get_trials(deepcopy=False))
            for trial in failed:  # the retry takes the failed trial's place in the budget
                requeue(study, trial)
            if not failed:
                return 0
            self.table.update(job_id, state=JobState.QUEUED, error=None, ended=None)
        self._schedule()
        return len(failed)

    def delete_dataset(self, dataset_id: str, user: Person) -> None:
        """Delete a stored dataset (owner or admin) unless a queued or running job needs it."""
        busy = [j.study_name for j in self.jobs() if j.dataset_id == dataset_id
                and j.state.active]
        if busy:
            raise ValueError(f"the search '{busy[0]}' still uses this dataset: cancel it or let "
                             "it finish first.")
        DatasetStore(self.root).delete(dataset_id, user)

    def wait(self, job_id: str, timeout: float = 600) -> Job:
        """Block until the job is no longer queued or running (tests, CLI)."""
        deadline = time.monotonic() + timeout
        with self._done:
            while self.get(job_id).state.active:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"job {job_id} still {self.get(job_id).state}.")
                self._done.wait(min(left, 1.0))
        return self.get(job_id)

    # -- running -------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Mark jobs whose process is gone as interrupted and fail their half-run trials."""
        host = socket.gethostname()
        recovered = []
        for job in self.table.all():
            if not job.state.on_device or job.host != host:
                continue
            with _LIVE_LOCK:
                live = job.id in _LIVE and job.pid == os.getpid()
            if live or (job.pid != os.getpid() and _pid_alive(job.pid)):
                continue
            if job.state is JobState.CANCELLING:  # it was being stopped anyway
                self.table.update(job.id, state=JobState.CANCELLED, ended=time.time())
            else:
                self.table.update(job.id, state=JobState.INTERRUPTED, ended=time.time(),
                                  error="the server stopped while this job was running; Resume "
                                  "continues it (completed trials are kept)")
            _fail_orphan_trials(job, self.root)
            recovered.append(job.id)
        return recovered

    def _schedule(self) -> None:
        host = socket.gethostname()
        with self._lock:
            for job in self.table.all():
                if job.state is not JobState.QUEUED:
                    continue
                free = [d for d in self.devices if d not in self._busy]
                wanted = (job.search_config.workers if job.kind is JobKind.SEARCH
                          else 1)
                devices = free[:1] if wanted == 1 else free[:wanted or len(free)]
                if not devices or not self.table.claim(job.id, devices, host, os.getpid()):
                    break  # every device is busy: the rest wait in the queue
                self._start(job, devices)

    def _start(self, job: Job, devices: list[str]) -> None:
        stop = threading.Event()
        for device in devices:
            self._busy[device] = job.id
        self._stops[job.id] = stop
        with _LIVE_LOCK:
            _LIVE.add(job.id)
        thread = threading.Thread(target=self._thread, args=(job, devices, stop),
                                  name=f"esm-nas-job-{job.id}", daemon=True)
        thread.start()

    def _thread(self, job: Job, devices: list[str], stop: threading.Event) -> None:
        try:
            outcome = self._runner(self.get(job.id), devices=devices, root=self.root,
                                   should_stop=stop.is_set)
            state = JobState.CANCELLED if stop.is_set() else JobState(outcome or
                                                                      JobState.FINISHED)
            error = None
        except Exception as exc:  # shown to the user on the Monitor page
            state = JobState.CANCELLED if stop.is_set() else JobState.FAILED
            problem = storage_problem(exc, self.root)
            error = str(problem) if problem else f"{type(exc).__name__}: {exc}"
            logger.error("job %s failed:\n%s", job.id, traceback.format_exc())
        with self._lock:
            self.table.update(job.id, state=state, ended=time.time(), error=error)
            for device in devices:
                self._busy.pop(device, None)
            self._stops.pop(job.id, None)
            with _LIVE_LOCK:
                _LIVE.discard(job.id)
            self._done.notify_all()
        self._schedule()


def _fail_orphan_trials(job: Job, root) -> None:
    """Trials left RUNNING by the dead process of ``job`` become FAIL and are queued again
    (nothing else is touched: other workers may be running trials of the same study)."""

    try:
        study = optuna.load_study(study_name=job.study_name,
                                  storage=make_storage(job.storage, root))
    except KeyError:
        return  # the study was never created
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if trial.user_attrs.get("pid") == job.pid and trial.user_attrs.get("host") == job.host:
            set_trial_user_attr(study, trial, "fail_reason",
                                "interrupted: the server process stopped; queued again")
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            requeue(study, trial)


def _run_job(job: Job, *, devices: list[str], root, should_stop) -> JobState:
    store = DatasetStore(root)
    if job.kind is JobKind.COMPRESS:
        return _run_compress(job, store, devices[0], root, should_stop)
    if job.kind is JobKind.PRETRAIN:
        return _run_pretrain(job, devices[0], should_stop)
    dataset = store.load(job.dataset_id)
    config = replace(job.search_config, device=devices[0])
    report = run_search(config, dataset, job.out_dir, root=root, storage=job.storage,
                        should_stop=should_stop, dataset_path=store.get(job.dataset_id).path,
                        devices=devices)
    return JobState.FINISHED if report is not None else JobState.CANCELLED


def _run_compress(job: Job, store: DatasetStore, device: str, root, should_stop
                  ) -> JobState:
    source = next(j for j in JobTable(Path(root) / "jobs.db").all()
                  if j.id == job.compress_source)
    config = replace(CompressConfig.from_dict(job.config["compress"]), device=device)
    try:
        compress(source.out_dir, job.out_dir, config, data=store.get(job.dataset_id).path,
                 storage=job.storage, study_name=job.study_name, should_stop=should_stop)
    except CompressCancelled:
        return JobState.CANCELLED
    return JobState.FINISHED


def _run_pretrain(job: Job, device: str, should_stop) -> JobState:
    """Pretrain (or resume) into the job's backbone folder; the curve goes to its study."""
    request = job.pretrain_request
    progress = StudyProgress(job.study_name, job.storage)
    try:
        done = pretrain(request.corpus, job.out_dir, replace(request.config, device=device),
                 progress=progress, should_stop=should_stop,
                 ignore_labels=request.dataset_id is None,
                 credit=f"Corpus: {Path(request.corpus).name}, uploaded to this workspace."
                 if request.dataset_id is None else
                 f"Corpus: the training and validation sequences of dataset "
                 f"{request.dataset_id} (its test sequences were left out).")
    except TrainingCancelled:
        progress.finish(None)
        return JobState.CANCELLED
    except BaseException:
        progress.finish(None)
        raise
    progress.finish(done.perplexity.model)
    return JobState.FINISHED


def write_dataset_corpus(dataset: Dataset, path: Path) -> int:
    """A stored dataset's training and validation sequences as FASTA (labels left out); the
    test sequences stay unseen. Returns how many were written."""
    frame = dataset.frame[dataset.frame["split"].isin(["train", "valid"])]
    with path.open("w") as out:
        for i, (record_id, sequence) in enumerate(zip(frame["id"], frame["sequence"])):
            out.write(f">{record_id or f'seq{i + 1}'}\n{sequence}\n")
    return len(frame)
