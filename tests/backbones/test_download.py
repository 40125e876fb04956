"""Downloading a registry backbone (issue 17, item 16) from a loopback Hub that speaks the real
HTTP API: sizes from the repository tree, byte progress, a refusal before the first byte when
the disk is too small, and an interrupted download continued with an HTTP Range request."""

from __future__ import annotations

import hashlib
import os

import pytest
from huggingface_hub import try_to_load_from_cache

from nas_core.backbones.download import DownloadError, download, plan
from tests.app.live import free_port
from tests.fakehub import FakeHub, Repo

REPO = "facebook/esm2_t6_8M_UR50D"  # what the registry's esm2_t6_8M points at


def _checkpoint(tiny_backbone) -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in tiny_backbone.iterdir() if p.is_file()}
    assert "model.safetensors" in files and "config.json" in files
    files["tf_model.h5"] = b"x" * 1000  # present on the Hub, never needed
    return files


@pytest.mark.slow  # over 20 s on two cores
def test_download_reports_bytes_resumes_and_refuses_a_small_disk(tiny_backbone, tmp_path):
    os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
    files = _checkpoint(tiny_backbone)
    with FakeHub() as hub:
        hub.repos[REPO] = Repo(private=False, files=files)
        todo = plan("esm2_t6_8M", endpoint=hub.url)
        names = [p for p, _ in todo.files]
        assert "model.safetensors" in names and "tf_model.h5" not in names
        assert todo.total_bytes == sum(len(files[p]) for p in names)
        # a disk with less room than the files: refused before the first byte
        with pytest.raises(DownloadError, match="needs .* more on disk"):
            download("esm2_t6_8M", endpoint=hub.url, cache_dir=tmp_path / "cache",
                     free_bytes=lambda where: 10)
        assert not [r for r in hub.requests if "/resolve/" in r[1] and r[0] == "GET"]
        # an interrupted download: half the weights are in the cache as a partial file
        weights = files["model.safetensors"]
        blobs = tmp_path / "cache" / f"models--{REPO.replace('/', '--')}" / "blobs"
        blobs.mkdir(parents=True)
        (blobs / f"{hashlib.sha256(weights).hexdigest()}.part").write_bytes(
            weights[: len(weights) // 2])
        seen: list[tuple[int, int]] = []
        folder = download("esm2_t6_8M", endpoint=hub.url, cache_dir=tmp_path / "cache",
                          progress=lambda done, total: seen.append((done, total)))
        ranges = [r[2].get("Range") for r in hub.requests
                  if r[0] == "GET" and r[1].endswith("/model.safetensors")]
        assert ranges == [f"bytes={len(weights) // 2}-"]  # only the rest was sent
        assert (folder / "model.safetensors").read_bytes() == weights
        assert seen[-1] == (todo.total_bytes, todo.total_bytes)
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # it only moves forward
        assert isinstance(try_to_load_from_cache(REPO, "config.json",
                                                 cache_dir=tmp_path / "cache"), str)
        # a second run finds everything in the cache and fetches nothing
        before = len(hub.requests)
        download("esm2_t6_8M", endpoint=hub.url, cache_dir=tmp_path / "cache")
        assert not [r for r in hub.requests[before:] if "/resolve/" in r[1] and r[0] == "GET"]
    with pytest.raises(DownloadError, match="could not list"):  # no Hub there
        plan("esm2_t6_8M", endpoint=f"http://127.0.0.1:{free_port()}")


def test_the_search_page_downloads_a_backbone_in_the_background(workspace, tiny_backbone,
                                                                tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.helpers import ROOT, store_example
    from ui.resources import downloads

    store_example()
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    with FakeHub() as hub:
        hub.repos[REPO] = Repo(private=False, files=_checkpoint(tiny_backbone))
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.session_state["user_name"] = "alice"
        at.run()
        at.switch_page("app_pages/search.py").run()
        chooser = at.multiselect(key="search_backbones")
        demo = chooser.value
        assert "not downloaded yet" in chooser.format_func("esm2_t6_8M")
        chooser.set_value([*demo, "esm2_t6_8M"]).run()
        assert any("before starting" in w.value for w in at.warning)
        at.button(key="search_download_esm2_t6_8M").click().run()
        assert not at.exception, at.exception
        state = downloads().wait("esm2_t6_8M", timeout=120)
        assert state.finished and state.done == state.total > 0, state
        at.multiselect(key="search_backbones").set_value(demo).run()
        assert "not downloaded yet" not in at.multiselect(key="search_backbones").format_func(
            "esm2_t6_8M")
        assert isinstance(try_to_load_from_cache(REPO, "model.safetensors",
                                                 cache_dir=tmp_path / "cache"), str)


def test_download_backbone_on_the_command_line(tiny_backbone, tmp_path):
    import subprocess
    import sys

    from tests.helpers import ROOT

    with FakeHub() as hub:
        hub.repos[REPO] = Repo(private=False, files=_checkpoint(tiny_backbone))
        env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(tmp_path / "cache"),
                   HF_HUB_DISABLE_XET="1")
        done = subprocess.run([sys.executable, "-m", "nas_core", "download-backbone",
                               "esm2_t6_8M"], capture_output=True, text=True, cwd=ROOT,
                              env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "[100%]" in done.stderr and "is in the Hugging Face cache" in done.stdout
    assert isinstance(try_to_load_from_cache(REPO, "config.json",
                                             cache_dir=tmp_path / "cache"), str)
