"""The background job manager: queue, cancel, resume, owners, retries, server restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import optuna
import pytest
from optuna.trial import TrialState

from nas_core.common.access import Person
from nas_core.runtime.jobs import JobManager
from nas_core.runtime.jobtable import JobTable
from nas_core.search.budget import counted_trials
from nas_core.search.config import SearchConfig
from nas_core.search.space import SearchSpace
from nas_core.search.storage import make_storage
from tests.helpers import ROOT, store_example, study_of, wait_for

ALICE = Person("alice")


@pytest.fixture
def dataset_id(workspace):
    return store_example(as_name="amp_vs_transmembrane.csv").id


def config(tiny_backbone, name: str, n_trials: int = 2, epochs: int = 2,
           adaptations=("frozen", "lora", "partial"), **kw) -> SearchConfig:
    space = SearchSpace(backbones=(str(tiny_backbone),), max_epochs_range=(epochs, epochs),
                        batch_sizes=(32,), lr_range=(1e-3, 1e-2), adaptations=adaptations)
    return SearchConfig(name, space, n_trials=n_trials, **kw)


def test_jobs_run_one_at_a_time_and_queue(workspace, tiny_backbone, dataset_id):
    manager = JobManager(workspace, devices=["cpu"])
    first = manager.submit(config(tiny_backbone, "q1", n_trials=3), dataset_id, ALICE)
    second = manager.submit(config(tiny_backbone, "q2"), dataset_id, Person("bob"))
    assert first.state == "running"
    assert second.state == "queued" and second.queue_position == 1
    # a second manager (another browser, a page reload) reads the same table
    assert JobManager(workspace, devices=["cpu"]).get(second.id).state == "queued"
    assert manager.wait(first.id).state == "finished"
    assert manager.wait(second.id).state == "finished"
    assert manager.get(second.id).started >= manager.get(first.id).ended
    report = manager.get(first.id).report()
    assert report.n_trials == 3 and report.best.test["roc_auc"] is not None


@pytest.mark.slow  # over 20 s on two cores
def test_only_the_owner_cancels_and_resume_finishes(workspace, tiny_backbone, dataset_id):
    manager = JobManager(workspace, devices=["cpu"])
    job = manager.submit(config(tiny_backbone, "cancel-me", n_trials=6, epochs=3,
                                pruner="none", adaptations=("lora",)), dataset_id,
                         ALICE)
    study = study_of(job, workspace)
    wait_for(lambda: any(t.state == TrialState.COMPLETE for t in study.get_trials()))
    with pytest.raises(PermissionError, match="only alice"):
        manager.cancel(job.id, Person("mallory"))
    assert manager.cancel(job.id, Person("alice")).state == "cancelling"  # said at once
    stopped = manager.wait(job.id)
    assert stopped.state == "cancelled"
    cancelled = [t for t in study.get_trials() if t.user_attrs.get("cancelled")]
    assert len(cancelled) == 1 and "stopped by the user" in cancelled[0].user_attrs[
        "fail_reason"]
    kept = [(t.number, t.values) for t in study.get_trials(states=(TrialState.COMPLETE,))]
    assert kept and len(kept) < 6
    # headless, as the Results page's button: test and export the best finished trial
    done = subprocess.run([sys.executable, "-m", "nas_core", "finalise", "--job", job.id],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "budget was not spent" in done.stdout
    report = manager.get(job.id).report()
    assert report.best.trial in {n for n, _ in kept}
    assert "budget was not spent" in report.budget_note
    again = subprocess.run([sys.executable, "-m", "nas_core", "finalise", "--job", "nope"],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 2 and "no job 'nope'" in again.stderr
    with pytest.raises(PermissionError):
        manager.resume(job.id, Person("mallory"))
    manager.resume(job.id, Person("alice"))
    assert manager.wait(job.id).state == "finished"
    after = {t.number: t.values for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert all(after[n] == v for n, v in kept)  # completed trials survived untouched
    counted = [t for t in study.get_trials() if t.state in (TrialState.COMPLETE,
               TrialState.PRUNED, TrialState.FAIL) and not t.user_attrs.get("cancelled")]
    assert len(counted) == 6


def test_cancel_a_queued_job(workspace, tiny_backbone, dataset_id):
    manager = JobManager(workspace, devices=["cpu"])
    running = manager.submit(config(tiny_backbone, "busy"), dataset_id, Person("alice"))
    with pytest.raises(ValueError, match="already queued or running"):
        manager.submit(config(tiny_backbone, "busy"), dataset_id, Person("bob"))
    with pytest.raises(ValueError, match="an identity is needed"):
        manager.submit(config(tiny_backbone, "anonymous"), dataset_id, Person(" "))
    queued = manager.submit(config(tiny_backbone, "waiting"), dataset_id, Person("bob"))
    assert manager.cancel(queued.id, Person("bob")).state == "cancelled"
    manager.wait(running.id)
    assert manager.get(queued.id).state == "cancelled"  # never started
    assert manager.get(queued.id).started is None


def test_retry_failed_trials(workspace, tiny_backbone, dataset_id, second_build_fails):
    manager = JobManager(workspace, devices=["cpu"])
    job = manager.submit(config(tiny_backbone, "retry", n_trials=3, pruner="none",
                                adaptations=("lora",)), dataset_id, Person("alice"))
    assert manager.wait(job.id).state == "finished"
    study = study_of(job, workspace)
    failed = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert len(failed) == 1
    assert manager.retry_failed(job.id, Person("alice")) == 1
    assert manager.wait(job.id).state == "finished"
    trials = study.get_trials()
    assert len(trials) == 4 and trials[-1].state == TrialState.COMPLETE
    assert trials[-1].params == failed[0].params
    assert trials[-1].user_attrs["retry_of"] == failed[0].number
    assert manager.retry_failed(job.id, Person("alice")) == 0  # nothing left to retry


SERVER = textwrap.dedent("""
    import sys, time
    from nas_core.common.access import Person
    from nas_core.runtime.jobs import JobManager
    from nas_core.search.config import SearchConfig
    from nas_core.search.space import SearchSpace
    root, backbone, dataset_id = sys.argv[1:4]
    # LoRA trials run the backbone: each lasts seconds, so the kill lands inside one
    space = SearchSpace(backbones=(backbone,), max_epochs_range=(6, 6), batch_sizes=(16,),
                        adaptations=("lora",))
    manager = JobManager(root, devices=["cpu"])
    job = manager.submit(SearchConfig("restart", space, n_trials=6, pruner="none",
                                      patience=6), dataset_id, Person("alice"))
    print(job.id, flush=True)
    while True:
        time.sleep(1)
""")


@pytest.mark.slow
def test_server_restart_marks_jobs_interrupted_and_resume_finishes(workspace, tiny_backbone,
                                                                  dataset_id):
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(workspace), str(tiny_backbone), dataset_id],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        job_id = server.stdout.readline().strip()
        storage = make_storage(None, workspace)

        def mid_trial() -> bool:
            assert server.poll() is None, "the server process died before the kill"
            try:
                study = optuna.load_study(study_name="restart", storage=storage)
            except KeyError:
                return False
            trials = study.get_trials()
            done = sum(t.state == TrialState.COMPLETE for t in trials)
            return done >= 2 and any(t.state == TrialState.RUNNING and "pid" in t.user_attrs
                                     and len(t.user_attrs.get("history", [])) < 4
                                     for t in trials)

        wait_for(mid_trial, timeout=180)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    study = optuna.load_study(study_name="restart", storage=make_storage(None, workspace))
    before = {t.number: t.values for t in study.get_trials(states=(TrialState.COMPLETE,))}
    manager = JobManager(workspace, devices=["cpu"])  # the restarted server
    job = manager.get(job_id)
    assert job.state == "interrupted" and "Resume" in job.error
    orphans = [t for t in study.get_trials() if t.user_attrs.get("fail_reason", "").startswith(
        "interrupted")]
    assert len(orphans) == 1 and orphans[0].state == TrialState.FAIL
    manager.resume(job_id, Person("alice"))
    assert manager.wait(job_id).state == "finished"
    after = {t.number: t.values for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert all(after[n] == v for n, v in before.items())
    # the orphan was queued again with its architecture; the retry takes its budget slot
    retry = [t for t in study.get_trials() if t.user_attrs.get("retry_of") == orphans[0].number]
    assert len(retry) == 1 and retry[0].params == orphans[0].params
    assert retry[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert len(counted_trials(study)) == 6
    assert len([t for t in study.get_trials() if t.state != TrialState.WAITING]) == 7
    assert not [t for t in study.get_trials() if t.state == TrialState.RUNNING]
    assert job_id in {j.id for j in manager.jobs()}


def test_a_job_spreads_over_every_free_gpu_and_others_wait(workspace, tiny_backbone, dataset_id):
    """Scheduling only (no GPU here): the runner records the devices each job is given."""
    import threading

    release = threading.Event()
    given = {}

    def runner(job, *, devices, root, should_stop):
        given[job.study_name] = devices
        release.wait(30)
        return "finished"

    manager = JobManager(workspace, devices=["cuda:0", "cuda:1", "cuda:2"], runner=runner)
    single = manager.submit(config(tiny_backbone, "one-gpu"), dataset_id, Person("alice"))
    spread = manager.submit(config(tiny_backbone, "all-gpus", workers=None), dataset_id,
                            Person("bob"))
    waiting = manager.submit(config(tiny_backbone, "later"), dataset_id, Person("carol"))
    deadline = time.monotonic() + 30
    while len(given) < 2 and time.monotonic() < deadline:  # the job threads are starting
        time.sleep(0.05)
    assert given == {"one-gpu": ["cuda:0"], "all-gpus": ["cuda:1", "cuda:2"]}
    assert manager.get(spread.id).device == "cuda:1,cuda:2"
    assert manager.get(waiting.id).state == "queued"  # every GPU is taken
    release.set()
    for job in (single, spread, waiting):
        assert manager.wait(job.id).state == "finished"
    assert given["later"] in (["cuda:0"], ["cuda:1"], ["cuda:2"])


def test_a_cancelling_job_keeps_its_device_and_a_restart_finishes_the_cancel(
        workspace, tiny_backbone, dataset_id):
    import threading

    release = threading.Event()

    def runner(job, *, devices, root, should_stop):
        while not should_stop():
            time.sleep(0.01)
        release.wait(30)  # a slow last step
        return "cancelled"

    manager = JobManager(workspace, devices=["cpu"], runner=runner)
    first = manager.submit(config(tiny_backbone, "slow-stop"), dataset_id, ALICE)
    assert manager.cancel(first.id, ALICE).state == "cancelling"
    assert manager.cancel(first.id, ALICE).state == "cancelling"  # a second click is harmless
    second = manager.submit(config(tiny_backbone, "next"), dataset_id, ALICE)
    assert manager.get(second.id).state == "queued"  # the device is still busy
    release.set()
    assert manager.wait(first.id).state == "cancelled"
    manager.cancel(second.id, ALICE)
    assert manager.wait(second.id).state == "cancelled"
    # a server that died while cancelling: the next one records the cancel, not a failure
    table = JobTable(workspace / "jobs.db")
    table.update(first.id, state="cancelling", pid=2 ** 22 + 12345)
    assert JobManager(workspace, devices=["cpu"], runner=runner).get(first.id).state == \
        "cancelled"
