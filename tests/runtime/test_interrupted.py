"""Issue 30, item 4: Finalise and Compress killed half-way (a real SIGKILL, at a chosen point
of the real code) leave their folder marked unfinished, never a mix that reads as complete;
running them again finishes it. (Publishing is one Hub commit: it is all or nothing.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from nas_core.cli import main
from nas_core.common.report import load_report
from nas_core.common.workspace import INCOMPLETE, default_storage_url, interrupted
from nas_core.views.results import load_compression
from tests.compression.test_compress import _search
from tests.helpers import ROOT

pytestmark = [pytest.mark.slow]


def killed_at(script: str, env: dict) -> subprocess.CompletedProcess:
    """Run ``script`` (which arranges to SIGKILL itself part-way) in a fresh process."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tiny_backbone):
    """One finished search for both tests (each leaves its folder complete again)."""
    root = tmp_path_factory.mktemp("interrupted") / "ws"
    mp = pytest.MonkeyPatch()
    mp.setenv("ESM_NAS_HOME", str(root))
    out = _search(root, tiny_backbone, root.parent / "run", "full")
    env = {**os.environ, "ESM_NAS_HOME": str(root), "OMP_NUM_THREADS": "1",
           "ESM_NAS_STORAGE": default_storage_url(root)}
    yield out, env
    mp.undo()


def test_finalise_killed_while_swapping_in_its_results_is_marked_and_finished_by_a_rerun(
        searched):
    run_dir, env = searched
    before = json.loads((run_dir / "report.json").read_text())
    # the second folder moved into place is the moment a reader would see a mix of old and new
    result = killed_at(f"""
        import os, pathlib, signal
        from nas_core.cli import main
        real, seen = pathlib.Path.replace, []
        def replace(self, target):
            if pathlib.Path(target).parent == pathlib.Path({str(run_dir)!r}):
                seen.append(target)
                if len(seen) == 2:
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(self, target)
        pathlib.Path.replace = replace
        main(["finalise", "--study", "to-compress-full", "--out", {str(run_dir)!r}])
        """, env)
    assert result.returncode == -9, result.stdout + result.stderr
    assert "Finalising the search stopped" in (interrupted(run_dir) or "")
    assert load_report(run_dir) is None  # not read as complete
    assert main(["finalise", "--study", "to-compress-full", "--storage",  # the same command
                 env["ESM_NAS_STORAGE"], "--out", str(run_dir)]) == 0
    assert not (run_dir / INCOMPLETE).exists() and not list(run_dir.glob(".finalising-*"))
    report = load_report(run_dir)
    assert report is not None and report.best.trial == before["best"]["trial"]
    assert (run_dir / "best_model" / "model.safetensors").is_file()


def test_compress_killed_after_its_first_variant_is_marked_and_finished_by_a_rerun(
        searched, tmp_path):
    run_dir, env = searched
    out = tmp_path / "compressed"
    args = ["compress", str(run_dir), "--targets", "0.5", "--epochs", "1", "--out", str(out)]
    assert main(args) == 0
    assert load_compression(out) is not None  # a complete earlier result
    result = killed_at(f"""
        import os, signal
        import nas_core.compression.compress as compress
        real = compress._export
        def export(*args, **kwargs):
            real(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)  # the first variant written, not the rest
        compress._export = export
        from nas_core.cli import main
        main({args!r})
        """, env)
    assert result.returncode == -9, result.stdout + result.stderr
    assert "Compress stopped" in (interrupted(out) or "")
    assert load_compression(out) is None  # the earlier compress.json no longer describes it
    assert main(args) == 0  # the same command again
    assert interrupted(out) is None
    result_after = load_compression(out)
    assert result_after is not None
    assert [e["kind"] for e in result_after["entries"]] == ["reference", "pruned", "depth"]
