"""The package layering holds: every module imports only its own or lower layers (a script may use
every sub-layer of its own package), no script imports another script, and no import cycle exists
between project modules."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# The house, defined here once: (layer, package, job). Lower layers never import higher ones.
# Inside cam_sam: the one-image core (cam_sam.<module>: no files, no CLI) < the settings' schema <
# dataset runs < serving and studies (siblings: neither imports the other). A module's layer is
# that of the longest package here it starts with; a script's upward check uses its top-level
# package, so cam_sam.segment may use cam_sam.runs.
HOUSE = [
    (
        0,
        "common",
        "config and --set, defaults, the project's errors and the scripts' entry, atomic I/O, geometry, "
        "metrics, resumable runs, safe checkpoint reading, devices, torchrun sharding",
    ),
    (1, "data", "ISIC 2017 and the other datasets' layouts, image folders, synthetic images; errors name the file"),
    (1, "models", "classifier registry and preprocessing; the student U-Net and its export"),
    (1, "medsam", "one promptable segmenter over LiteMedSAM, MedSAM and SAM; ONNX Runtime / OpenVINO backends"),
    (
        1.5,
        "visualisations",
        "drawing (overlays, classification and synthetic-pair figures, bootstrap intervals) "
        "and figure scripts over saved runs",
    ),
    (2, "explainers", "CAMs and LRP, their ensemble, CAM quality (generate_cams, cam_quality)"),
    (2, "classification", "fine-tuning data, scores and metrics of a melanoma or three-class classifier"),
    (3.0, "cam_sam", "the one-image core: the student, prompts, proposals, pipeline, post-processing, trust"),
    (3.1, "cam_sam.settings", "the one schema of a run's settings, the presets, the shipped checkpoints"),
    (3.2, "cam_sam.runs", "dataset runs: build, inputs, dataset, work, overlays"),
    (3.3, "cam_sam.serve", "one image at a time: the service, the page and its API, the load test"),
    (3.3, "cam_sam.studies", "scripts that run dataset runs and write tables and figures"),
    (4, "self_training", "pseudo-labels, synthetic pairs, the student's data, training, shipping"),
]
LAYERS = {package: layer for layer, package, _ in HOUSE}
SIBLINGS = {("cam_sam.serve", "cam_sam.studies"), ("cam_sam.studies", "cam_sam.serve")}
MAX_LIBRARY_FUNCTION_LINES = 60


def _layer_of(module: str) -> str:
    """The LAYERS entry ``module`` belongs to: the longest one it is, or starts with plus a dot."""
    return max((k for k in LAYERS if module == k or module.startswith(k + ".")), key=len)


def _top_layer(module: str) -> float:
    return LAYERS[module.split(".")[0]]


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
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names
            ]
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
            if script and _top_layer(target) > _top_layer(name):
                problems.append(f"{name} (script) imports the higher layer {target}")
            if not script and LAYERS[_layer_of(target)] > LAYERS[_layer_of(name)]:
                problems.append(f"{name} (library) imports the higher layer {target}")
            if (_layer_of(name), _layer_of(target)) in SIBLINGS:
                problems.append(f"{name} imports {target}: serving and studies never import each other")
    return sorted(problems)


def test_every_package_has_its_place_in_the_house():
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests"}
    assert packages == {package for package in LAYERS if "." not in package}


def test_modules_import_downwards_and_scripts_import_no_script():
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
                cycles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_violations(tmp_path):
    """The rules can fail: an upward import (library or script) and a script importing a script are caught."""
    files = {
        "common.low": "from cam_sam import high\n",
        "data.figure": 'from visualisations import draw\nif __name__ == "__main__":\n    pass\n',
        "visualisations.draw": "import numpy\n",
        "cam_sam.script_c": 'from cam_sam.runs import build\nif __name__ == "__main__":\n    pass\n',
        "cam_sam.high": "import numpy\n",
        "cam_sam.core": "from cam_sam.runs import build\n",
        "cam_sam.runs.build": "import numpy\n",
        "cam_sam.script_a": 'from cam_sam import script_b\nif __name__ == "__main__":\n    pass\n',
        "cam_sam.script_b": 'if __name__ == "__main__":\n    pass\n',
    }
    modules = {}
    for name, text in files.items():
        modules[name] = tmp_path / f"{name}.py"
        modules[name].write_text(text)
    graph = {name: _imports(path, modules) for name, path in modules.items()}
    assert graph["common.low"] == {"cam_sam.high"}
    assert _violations(modules, graph) == [
        "cam_sam.core (library) imports the higher layer cam_sam.runs.build",
        "cam_sam.script_a imports the script cam_sam.script_b",
        "common.low (library) imports the higher layer cam_sam.high",
        "data.figure (script) imports the higher layer visualisations.draw",
    ]


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
