from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"

# No test may reach the real Hugging Face Hub.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# The loopback fake Hub speaks the plain LFS protocol; must be set before huggingface_hub loads.
os.environ["HF_HUB_DISABLE_XET"] = "1"


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    """A random-weight ESM-2-shaped checkpoint written through the real code path."""
    from nas_core.backbones import make_tiny_backbone

    return make_tiny_backbone(tmp_path_factory.mktemp("backbones") / "tiny", layers=3,
                              hidden=32, heads=4)


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "workspace"
    monkeypatch.setenv("ESM_NAS_HOME", str(home))
    return home


@pytest.fixture
def second_build_fails(monkeypatch):
    """The second model build of the test raises, as a broken checkpoint would; the failure
    happens inside the real objective, so the study records it like any other."""
    import nas_core.objective as objective_mod

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
    from tests.pgserver import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres, request) -> str:
    """A fresh database on the test server; the URL carries the password."""
    import re

    name = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:50]
    postgres.create_database(name)
    return postgres.url_for(name)
