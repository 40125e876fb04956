"""How fast the app and the command line answer a newcomer (issue 31, item 1), measured side by
side in one run on this machine:

- ``esm-nas --help`` beside ``python -c "import pandas"`` (goal: within 2x);
- a fresh server's first paint of Home, and of Monitor in a second browser (each on a server
  started for it, measured in headless Chromium from the request to the page's own text on
  screen; "settled": Streamlit's running indicator gone). Goal: under 3 s.

    python -m benchmarks.first_paint [--repeats 3] [--baseline DIR] [--write]

``--baseline DIR``: another checkout (``git worktree add DIR COMMIT``) measured the same way,
interleaved with this one, so both see the same machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.run import append_results, machine, say
from tests.app.live import CHROMIUM, CHROMIUM_ARGS, streamlit_server
from tests.helpers import ROOT

PAGES = {"": "Find the best protein language model",  # Home: its first paragraph
         "monitor": "Monitor"}  # its heading


def seconds(command: list[str], root: Path = ROOT) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=root, check=True, capture_output=True)
    return time.perf_counter() - started


def command_line(repeats: int, roots: dict[str, Path]) -> dict[str, float]:
    python = sys.executable
    rows: dict[str, list[float]] = {"import pandas": []}
    for _ in range(repeats):  # interleaved, so every row sees the same machine
        rows["import pandas"].append(seconds([python, "-c", "import pandas"]))
        for label, root in roots.items():
            for args in (["--help"], ["search", "--help"]):
                rows.setdefault(f"{label}: esm-nas {' '.join(args)}", []).append(
                    seconds([python, "-m", "nas_core", *args], root))
    return {k: statistics.median(v) for k, v in rows.items()}


def first_paint(path: str, text: str, root: Path = ROOT) -> tuple[float, float]:
    """(seconds to the page's text, seconds to settled) on a server started for this page."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, streamlit_server(Path(tmp), root=root) as url, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=CHROMIUM_ARGS)
        page = browser.new_page()
        started = time.perf_counter()
        page.goto(f"{url}/{path}")
        page.get_by_text(text, exact=text == "Monitor").first.wait_for(timeout=120_000)
        painted = time.perf_counter() - started
        page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')"
                               " || !document.querySelector('[data-testid=stStatusWidget]')"
                               ".innerText.includes('Running')", timeout=120_000)
        page.wait_for_timeout(300)
        settled = time.perf_counter() - started
        browser.close()
        return painted, settled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="append to benchmarks/RESULTS.md")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another checkout to measure beside this one")
    args = parser.parse_args(argv)
    roots = {"this": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    say(f"machine: {machine()}")
    cli = command_line(args.repeats, roots)
    for name, value in cli.items():
        say(f"{name:34s} {value:6.2f} s (median of {args.repeats}, interleaved)")
    for label in roots:
        ratio = cli[f"{label}: esm-nas --help"] / cli["import pandas"]
        say(f"{label}: esm-nas --help / import pandas: {ratio:.2f}x (goal: at most 2x)")
    for path, text in PAGES.items():
        for label, root in roots.items():
            runs = [first_paint(path, text, root) for _ in range(args.repeats)]
            painted = statistics.median(r[0] for r in runs)
            settled = statistics.median(r[1] for r in runs)
            say(f"{label}: fresh server, first {path or 'home'}: drawn in {painted:.1f} s, "
                f"settled in {settled:.1f} s (median of {args.repeats}; goal: drawn under 3 s)")
    if args.write:
        append_results(f"python -m benchmarks.first_paint --repeats {args.repeats}",
                       "added with the light command line and pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
