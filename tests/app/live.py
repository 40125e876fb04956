"""A real ``streamlit run app.py`` on a free loopback port, and Debian's Chromium for Playwright
(no browser download)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("ESM_NAS_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
PAGES = ("data", "search", "monitor", "results", "predict")  # every URL besides the home page


def require_browser() -> None:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append("Debian's chromium (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -r requirements-dev.txt)")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs both: missing there is a defect
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(tmp_path: Path, *, port: int | None = None, secrets: str | None = None,
                     env: dict | None = None, address: str = "127.0.0.1", root: Path = ROOT):
    """Yield the base URL of a running app (``root``'s app.py, by default this checkout's)
    whose workspace is ``tmp_path/workspace``;
    ``secrets`` is the text of its only secrets.toml; ``address`` the one it listens on (it
    is reached on loopback either way)."""
    port = port or free_port()
    args = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
            "--server.address", address, "--server.headless", "true"]
    tmp_path.mkdir(parents=True, exist_ok=True)
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text(secrets or "")
    args += ["--secrets.files", str(secrets_file)]  # never the developer's own secrets
    full_env = dict(os.environ, ESM_NAS_HOME=str(tmp_path / "workspace"),
                    STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", **(env or {}))
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, cwd=root, env={**full_env, "PYTHONPATH": str(root)},
                                stdout=log,
                                stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                        if r.read() == b"ok":
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("streamlit did not start:\n" + log_path.read_text())
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
