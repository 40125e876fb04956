from __future__ import annotations

import os
import re
from pathlib import Path

# No test may reach the real Hugging Face Hub.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# The loopback fake Hub speaks the plain LFS protocol; must be set before huggingface_hub loads
# (the engine imports it through transformers), hence before the imports below.
os.environ["HF_HUB_DISABLE_XET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

import nas_core.search.objective as objective_mod  # noqa: E402
from nas_core.backbones.loading import make_tiny_backbone  # noqa: E402
from nas_core.search.logs import quiet_optuna  # noqa: E402
from tests.helpers import split_example  # noqa: E402
from tests.pgserver import PostgresServer  # noqa: E402

quiet_optuna()  # as the CLI and the app do at start

if os.environ.get("PYTEST_XDIST_WORKER"):  # test processes share the cores: one thread each
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items) -> None:
    """Tests on a real PostgreSQL server carry the ``postgres`` marker by their fixture."""
    for item in items:
        if {"postgres", "pg_url"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    """A random-weight ESM-2-shaped checkpoint written through the real code path."""
    return make_tiny_backbone(tmp_path_factory.mktemp("backbones") / "tiny", layers=3,
                              hidden=32, heads=4)


@pytest.fixture
def peptides():
    """amp_vs_transmembrane, validated and homology-split once per session (a fresh copy)."""
    return split_example("amp_vs_transmembrane.csv")


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "workspace"
    monkeypatch.setenv("ESM_NAS_HOME", str(home))
    return home


@pytest.fixture
def second_build_fails(monkeypatch):
    """The second model build of the test raises, as a broken checkpoint would; the failure
    happens inside the real objective, so the study records it like any other."""
    real = objective_mod.build_model
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated broken checkpoint")
        return real(*args, **kwargs)

    monkeypatch.setattr(objective_mod, "build_model", flaky)


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server (Debian's binaries) on a loopback port, for the whole run."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres, request) -> str:
    """A fresh database on the test server; the URL carries the password."""
    name = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:50]
    postgres.create_database(name)
    return postgres.url_for(name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (``.ci/run`` exports CI=1) a skipped test is a failed one: everything a test needs
    is installed there, so a skip would hide a defect."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may be: {report.longrepr}"
