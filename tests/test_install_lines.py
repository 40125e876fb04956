"""The README's set-up lines choose the right PyTorch build for the machine (issue 17, item 15).

No network here, so pip's resolution itself is not run; what is checked is what decides it: each
install line names a requirements file, and that file puts PyTorch's CPU (or CUDA) index beside
PyPI and asks for torch, so plain PyPI's CUDA wheels are never the only candidate."""

from __future__ import annotations

import re

from tests.helpers import ROOT


def _quick_start() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```bash", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def _lines(name: str) -> list[str]:
    text = (ROOT / name).read_text().splitlines()
    return [line.strip() for line in text if line.strip() and not line.startswith("#")]


def test_each_quick_start_line_names_a_requirements_file_for_its_machine():
    lines = _quick_start()
    files = [re.search(r"-r (\S+)", line).group(1) for line in lines]
    assert files == ["requirements-cpu.txt", "requirements-gpu.txt", "requirements-dev.txt"]
    assert "without a GPU" in lines[0] and "NVIDIA GPU" in lines[1]
    for line in lines:
        assert "--index-url" not in line and line.count("&&") == 1  # one line, no third step


def test_the_cpu_files_choose_the_cpu_build_and_the_gpu_file_a_cuda_one():
    for name, index in (("requirements-cpu.txt", "/whl/cpu"), ("requirements-dev.txt",
                                                                "/whl/cpu"),
                        ("requirements-gpu.txt", "/whl/cu1")):
        lines = _lines(name)
        extra = [line for line in lines if line.startswith("--extra-index-url")]
        assert extra and index in extra[0], name
        assert any(re.match(r"torch\b", line) for line in lines), name
    assert "-e .[postgres]" in _lines("requirements.txt")
    # the CPU and GPU files install the same app: the plain requirements file
    assert "-r requirements.txt" in _lines("requirements-cpu.txt")
    assert "-r requirements.txt" in _lines("requirements-gpu.txt")
