"""The engine's folders are its map, and its imports run one way.

common <- data <- backbones <- modeling <- search <- pretraining <- publishing <- evaluation
<- compression <- design <- runtime <- views <- cli: a module imports only its own stage and
the stages to its left. No cycle, no import of the engine inside a function (that is how
cycles hide), no Streamlit, and the read-only views load neither torch nor transformers."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

ENGINE = ROOT / "nas_core"
STAGES = ["common", "data", "backbones", "modeling", "search", "pretraining", "publishing",
          "evaluation", "compression", "design", "runtime", "views", "cli"]
VIEWS_MAY_IMPORT = {"common", "search.budget", "search.config", "search.storage",
                    "runtime.jobtable"}


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in ENGINE.rglob("*.py"):
        if "hf_export" in path.parts:
            continue  # copied into exported models: imports only torch and transformers
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found[name] = ast.parse(path.read_text())
    return found


def engine_imports(tree: ast.Module, *, top_level: bool) -> set[str]:
    nodes = tree.body if top_level else [n for n in ast.walk(tree) if n not in tree.body]
    out = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nas_core"):
            for alias in node.names:  # `from nas_core.data import homology` is a module
                full = f"{node.module}.{alias.name}"
                out.add(full if (ROOT / Path(*full.split("."))).with_suffix(".py").exists()
                        or (ROOT / Path(*full.split("."))).is_dir() else node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("nas_core")}
    return out


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_engine_module_lives_in_a_stage():
    loose = [m for m in modules() if stage(m) not in STAGES and m not in
             ("nas_core", "nas_core.__main__")]
    assert not loose, f"modules outside the stage folders: {loose}"


def test_imports_run_one_way_between_stages():
    wrong = []
    for name, tree in modules().items():
        if stage(name) not in STAGES:
            continue
        for target in engine_imports(tree, top_level=True):
            if STAGES.index(stage(target)) > STAGES.index(stage(name)):
                wrong.append(f"{name} imports {target}")
    assert not wrong, "a lower stage imports a higher one:\n" + "\n".join(wrong)


def test_no_import_cycle_between_modules():
    graph = {name: {t for t in engine_imports(tree, top_level=True) if t != name}
             for name, tree in modules().items()}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(node):]
                                                                + [node]))
        if node in done:
            return
        for nxt in graph.get(node, ()):
            visit(nxt, path + [node])
        done.add(node)

    for name in graph:
        visit(name, [])


def test_no_engine_import_inside_a_function():
    hidden = {name: sorted(engine_imports(tree, top_level=False))
              for name, tree in modules().items()}
    hidden = {k: v for k, v in hidden.items() if v}
    assert not hidden, f"function-level imports of the engine (a hidden cycle): {hidden}"


def test_the_engine_never_imports_streamlit():
    offenders = [name for name, tree in modules().items() for node in ast.walk(tree)
                 if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                     (getattr(node, "module", None) or a.name).startswith("streamlit")
                     for a in node.names)]
    assert not offenders


def test_views_import_no_modelling_code():
    for name, tree in modules().items():
        if stage(name) != "views":
            continue
        for target in engine_imports(tree, top_level=True):
            rel = target.removeprefix("nas_core.")
            assert any(rel == ok or rel.startswith(ok + ".") for ok in VIEWS_MAY_IMPORT), \
                f"{name} imports {target}"


@pytest.mark.parametrize("module", ["nas_core.views.monitor", "nas_core.views.results"])
def test_read_only_views_load_neither_torch_nor_transformers(module):
    code = (f"import sys, {module}\n"
            "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_bundled_modelling_file_matches_the_engine():
    """The exported model's own copy of the activation table (it may import only torch)."""
    from nas_core.modeling.modules import ACTIVATION_LAYERS
    from nas_core.publishing.hf_export import modeling_esm_nas

    assert modeling_esm_nas._ACTIVATIONS == ACTIVATION_LAYERS


def test_no_page_runs_without_the_entry_script():
    """Streamlit runs the files of a ``pages/`` folder next to app.py on their own when their
    URL is opened first after a start (its v1 multipage mode), skipping app.py's sign-in gate.
    The page scripts live where Streamlit does not look, and app.py names every one of them."""
    assert not (ROOT / "pages").exists()
    entry = (ROOT / "app.py").read_text()
    scripts = sorted((ROOT / "app_pages").glob("*.py"))
    assert scripts
    for script in scripts:
        assert f'st.Page("app_pages/{script.name}"' in entry, script.name


def test_no_engine_function_is_longer_than_80_lines():
    """An orchestrator delegates to named steps (as optuna's study.py to _optimize.py): a
    function past 80 lines is a list of steps that wants names."""
    long = []
    for path in ENGINE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} "
                                f"({length} lines)")
    assert not long, "\n".join(long)


def test_no_engine_module_reads_the_report_by_string_keys():
    """report.json is read through nas_core.common.report only: a reader that indexes a report
    (or one of its blocks) by a literal key is a second, silent definition of the format."""
    pattern = re.compile(r"""\b(report|best|baseline|ensemble|leakage|calibration|cal|ens|"""
                         r"""summary|vs_reference|vs_best)(\[["']|\.get\(["'])""")
    found = []
    for path in [*ENGINE.rglob("*.py"), *(ROOT / "ui").glob("*.py"),
                 *(ROOT / "app_pages").glob("*.py")]:
        if path.name == "report.py" and path.parent.name == "common":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
