"""The dependency direction of docs/architecture.md: components never import the pipeline
wiring, the command line or the deployment code (what a step needs in its container lives
with its component)."""

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
UPSTREAM = ("pipelines", "deploy")


def _imports(path: pathlib.Path) -> set[str]:
    """The top-level packages a module imports, anywhere in it (functions included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", ["components", "mbqa_model_maker"])
def test_components_import_neither_pipelines_nor_deploy(package):
    modules = sorted((REPO / package).rglob("*.py"))
    assert modules
    offenders = {str(path.relative_to(REPO)): sorted(_imports(path) & set(UPSTREAM))
                 for path in modules if _imports(path) & set(UPSTREAM)}
    assert offenders == {}


def _imported_modules(path: pathlib.Path) -> set[str]:
    """The full module names a module imports from, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.update([node.module] + [f"{node.module}.{a.name}" for a in node.names])
    return names


def test_a_component_imports_no_other_components_executor():
    """Components share what they must agree on through `components.qa` (file names:
    `components.qa.contracts`), not through each other's executors or run_fn."""
    offenders = {}
    for path in sorted((REPO / "components").glob("*/*.py")):
        own = path.parent.name
        others = sorted(name for name in _imported_modules(path)
                        if name.startswith("components.") and name.split(".")[1] != own
                        and name.split(".")[1] != "qa"
                        and name.split(".")[-1] in ("executor", "run_fn"))
        if others:
            offenders[str(path.relative_to(REPO))] = others
    assert offenders == {}


def test_the_qa_core_has_no_import_cycle():
    """`components/qa` modules import each other one way (e.g. encoders -> tf1_hub ->
    mobilebert), function-level imports included."""
    modules = {p.stem: p for p in (REPO / "components" / "qa").glob("*.py")}
    graph = {name: {m.split(".")[-1] for m in _imported_modules(path)
                    if m.startswith("components.qa.") and m.split(".")[-1] in modules} - {name}
             for name, path in modules.items()}
    done, path = set(), []

    def visit(name: str) -> None:
        assert name not in path, f"import cycle: {' -> '.join([*path, name])}"
        if name in done:
            return
        path.append(name)
        for imported in sorted(graph[name]):
            visit(imported)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
