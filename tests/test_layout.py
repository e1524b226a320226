"""The layout's promise: imports only go down the floors of the pipeline, no module imports in a circle, and one
module (utils/determinism.py) owns the global determinism switches.

Floors (README "Layout"): utils (1) -> data, models (2) -> evaluation (3) -> training (4) -> experiment (5) ->
the CLIs and benchmarks (6). A module may import its own package and the floors below; data and models, both on
floor 2, know nothing of each other. Every import counts, also those inside functions.
"""
import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

FLOOR = {"utils": 1, "data": 2, "models": 2, "evaluation": 3, "training": 4, "experiment": 5,
         "train": 6, "eval": 6, "compare": 6, "detect": 6, "export": 6, "benchmarks": 6}


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the packages, the CLIs and the benchmarks."""
    found = {p.stem: p for p in REPO.glob("*.py")}
    for package in ("utils", "data", "models", "evaluation", "training", "experiment", "benchmarks"):
        found.update({f"{package}.{p.stem}": p for p in (REPO / package).glob("*.py") if p.stem != "__init__"})
    return found


def repo_imports(path: Path, known: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported repo module, line) for every import statement of a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out += [(name, node.lineno) for name in names if name in known]
    return out


def graph() -> dict[str, list[tuple[str, int]]]:
    known = modules()
    return {name: repo_imports(path, known) for name, path in known.items()}


def upward(edges: dict[str, list[tuple[str, int]]]) -> list[tuple[str, str, int]]:
    """(importer, imported, line) of every import that does not go down the floors."""
    return [(name, target, line) for name, imports in edges.items() for target, line in imports
            if target.split(".")[0] != name.split(".")[0]
            and FLOOR[target.split(".")[0]] >= FLOOR[name.split(".")[0]]]


def test_imports_only_go_down_the_floors():
    known = modules()
    problems = [f"{known[a].relative_to(REPO)}:{line} imports {known[b].relative_to(REPO)} "
                f"(floor {FLOOR[a.split('.')[0]]} -> {FLOOR[b.split('.')[0]]})" for a, b, line in upward(graph())]
    assert not problems, "imports that do not go down the floors:\n  " + "\n  ".join(problems)


def test_no_import_cycle():
    edges, known = graph(), modules()
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target, _ in edges[node]:
            if state.get(target) == "open":
                cycle = stack[stack.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(str(known[m].relative_to(REPO)) for m in cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_every_module_imports_on_its_own():
    """Each module imported first, with no other repo module loaded before it (what `python -c` would do)."""
    names = sorted(n for n in modules() if "." in n and not n.startswith("benchmarks."))
    code = ("import importlib, sys\n"
            f"roots = {sorted(set(n.split('.')[0] for n in names))!r}\n"
            f"for name in {names!r}:\n"
            "    for loaded in [m for m in sys.modules if m.split('.')[0] in roots]:\n"
            "        del sys.modules[loaded]\n"
            "    importlib.import_module(name)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_rules_catch_upward_and_sideways_imports(tmp_path):
    """The checker itself: a function-level import of training from utils, and models importing data, are found."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\ndef f():\n    from training.trainer import Trainer\n    from utils import io\n")
    imports = repo_imports(bad, modules())
    assert imports == [("training.trainer", 4), ("utils.io", 5)]
    assert upward({"utils.boxes": imports}) == [("utils.boxes", "training.trainer", 4)]
    assert upward({"models.loss": [("data.kitti", 1), ("utils.boxes", 2)]}) == [("models.loss", "data.kitti", 1)]


# Calls and assignments that change process-global RNG or determinism state.
GLOBAL_SWITCH_CALLS = {"random.seed", "np.random.seed", "torch.manual_seed", "torch.cuda.manual_seed",
                       "torch.cuda.manual_seed_all", "torch.use_deterministic_algorithms", "torch.set_num_threads"}
GLOBAL_SWITCH_TARGETS = ("torch.backends.cudnn.", "torch.utils.deterministic.", "os.environ['CUBLAS_WORKSPACE_CONFIG']",
                         "os.environ['PYTHONHASHSEED']")


def global_switches(path: Path) -> list[tuple[str, int]]:
    """(what, line) of every global determinism switch a file flips."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in GLOBAL_SWITCH_CALLS:
            out.append((ast.unparse(node.func), node.lineno))
        elif isinstance(node, ast.Assign):
            out += [(ast.unparse(t), node.lineno) for t in node.targets
                    if ast.unparse(t).startswith(GLOBAL_SWITCH_TARGETS)]
    return out


def test_only_utils_determinism_flips_global_switches(tmp_path):
    owners = {name for name, path in modules().items() if not name.startswith("benchmarks.") and global_switches(path)}
    assert owners == {"utils.determinism"}
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\ntorch.backends.cudnn.benchmark = True\ntorch.manual_seed(0)\n")
    assert global_switches(bad) == [("torch.backends.cudnn.benchmark", 2), ("torch.manual_seed", 3)]
