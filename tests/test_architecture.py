"""The package layering holds: libraries import only their own or lower layers, no script imports
another script, and no import cycle exists between project modules."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Lower layers never import higher ones. visualisations draws for scripts: no library imports it.
# Inside cam_sam: the one-image core (cam_sam.<module>: no files, no CLI) < the settings' schema <
# dataset runs < serving and studies (siblings: neither imports the other). A module's layer is
# that of the longest name here it starts with.
LAYERS = {"common": 0, "data": 1, "models": 1, "medsam": 1, "explainers": 2, "classification": 2,
          "cam_sam": 3.0, "cam_sam.settings": 3.1, "cam_sam.runs": 3.2, "cam_sam.serve": 3.3, "cam_sam.studies": 3.3,
          "self_training": 4, "visualisations": 5}
SIBLINGS = {("cam_sam.serve", "cam_sam.studies"), ("cam_sam.studies", "cam_sam.serve")}
MAX_LIBRARY_FUNCTION_LINES = 60


def _layer_of(module: str) -> str:
    """The LAYERS entry ``module`` belongs to: the longest one it is, or starts with plus a dot."""
    return max((k for k in LAYERS if module == k or module.startswith(k + ".")), key=len)


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in LAYERS if "." not in package for p in (REPO / package).rglob("*.py")}


def _is_script(path: Path) -> bool:
    return '__name__ == "__main__"' in path.read_text()


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules imported anywhere in ``path`` (``from pkg import mod`` counts as ``pkg.mod``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in LAYERS)
    return found


def _graph() -> tuple[dict[str, Path], dict[str, set[str]]]:
    modules = _modules()
    return modules, {name: _imports(path, modules) for name, path in modules.items()}


def _violations(modules: dict[str, Path], graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for name, targets in graph.items():
        script = _is_script(modules[name])
        for target in targets:
            target_path = modules.get(target)
            if target_path is not None and _is_script(target_path) and target != name:
                problems.append(f"{name} imports the script {target}")
            if not script and LAYERS[_layer_of(target)] > LAYERS[_layer_of(name)]:
                problems.append(f"{name} (library) imports the higher layer {target}")
            if (_layer_of(name), _layer_of(target)) in SIBLINGS:
                problems.append(f"{name} imports {target}: serving and studies never import each other")
    return sorted(problems)


def test_libraries_import_downwards_and_scripts_import_no_script():
    problems = _violations(*_graph())
    assert not problems, "\n".join(problems)


def test_no_import_cycle():
    _, graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if target not in graph:
                continue
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_violations(tmp_path):
    """The rules can fail: an upward library import and a script importing a script are caught."""
    files = {"common.low": "from cam_sam import high\n",
             "cam_sam.high": "import numpy\n",
             "cam_sam.core": "from cam_sam.runs import build\n",
             "cam_sam.runs.build": "import numpy\n",
             "cam_sam.script_a": "from cam_sam import script_b\nif __name__ == \"__main__\":\n    pass\n",
             "cam_sam.script_b": "if __name__ == \"__main__\":\n    pass\n"}
    modules = {}
    for name, text in files.items():
        modules[name] = tmp_path / f"{name}.py"
        modules[name].write_text(text)
    graph = {name: _imports(path, modules) for name, path in modules.items()}
    assert graph["common.low"] == {"cam_sam.high"}
    assert _violations(modules, graph) == ["cam_sam.core (library) imports the higher layer cam_sam.runs.build",
                                           "cam_sam.script_a imports the script cam_sam.script_b",
                                           "common.low (library) imports the higher layer cam_sam.high"]


def test_library_functions_are_short():
    long = []
    for name, path in _modules().items():
        if _is_script(path):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_LIBRARY_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert not long, "\n".join(long)
