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
