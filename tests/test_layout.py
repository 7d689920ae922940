"""gateway/'s rooms import one way (docs/architecture.md draws the layers).

Every import statement counts, wherever it sits (module top, inside a
function, under TYPE_CHECKING): a dependency that only a type needs is still
a dependency.
"""

from __future__ import annotations

import ast
import pathlib

import pytest
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
GATEWAY = ROOT / "gateway"

# Lowest first: a room may import from rooms before it, never after it.
# errors, ids, crashpoints and lambda_model (gateway/*.py) are shared by every room and
# import nothing of the gateway.
LAYERS = ["http", "metering", "functions", "execution", "events", "api", "console", "app", "cli"]
SHARED = {"errors", "ids", "crashpoints", "lambda_model"}


def _module_of(path: pathlib.Path) -> list[str]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _gateway_imports(path: pathlib.Path) -> list[tuple[int, list[str]]]:
    """(line, absolute module parts) of every gateway module path imports."""
    mod = _module_of(path)
    pkg = mod if path.name == "__init__.py" else mod[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
                if node.module is None:
                    out.extend((node.lineno, target + [a.name]) for a in node.names)
                    continue
            elif node.module and node.module.startswith("lambdalet.gateway"):
                target = node.module.split(".")[1:]
            else:
                continue
            out.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name.split(".")[1:]) for a in node.names if a.name.startswith("lambdalet.gateway"))
    return [(line, t) for line, t in out if t[:1] == ["gateway"]]


def _room(parts: list[str]) -> str | None:
    """The room a gateway module belongs to, or None for gateway itself."""
    if len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS or parts[1] in SHARED else f"?{parts[1]}"


def test_gateway_holds_only_rooms_and_the_shared_modules():
    loose = sorted(p.stem for p in GATEWAY.glob("*.py") if p.stem != "__init__" and p.stem not in SHARED)
    unknown = sorted(p.name for p in GATEWAY.iterdir() if p.is_dir() and (p / "__init__.py").exists() and p.name not in LAYERS)
    assert loose == [] and unknown == [], (loose, unknown)


def test_each_room_opens_with_a_map():
    for room in LAYERS:
        init = GATEWAY / room / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.splitlines()) > 3, f"{init} needs a docstring that maps the room"
        for path in sorted((GATEWAY / room).glob("*.py")):
            if path.stem not in ("__init__", "__main__"):
                assert path.name in doc or path.stem in doc, f"{init}'s map does not name {path.name}"


def test_rooms_import_only_rooms_below_them():
    wrong = []
    for path in sorted(GATEWAY.rglob("*.py")):
        here = _room(_module_of(path))
        for line, target in _gateway_imports(path):
            there = _room(target)
            if there is None or there == here:
                if there is None and here is not None and len(target) == 1:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports the gateway package itself")
                continue
            if there.startswith("?"):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {'.'.join(target)}, in no room")
            elif here in SHARED and there not in SHARED:
                wrong.append(f"{path.relative_to(ROOT)}:{line} is shared and imports {'.'.join(target)}")
            elif there in SHARED:
                continue
            elif here is None or LAYERS.index(there) > LAYERS.index(here):
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({here}) imports {'.'.join(target)} ({there}), a room above it")
    assert wrong == []


# docs/architecture.md: a module does one job and stays within about 400
# lines; past this one it is split by job.
MAX_MODULE_LINES = 420


def test_no_gateway_module_is_over_the_line_limit():
    long = {}
    for path in sorted(GATEWAY.rglob("*.py")):
        rel = path.relative_to(GATEWAY).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            long[rel] = lines
    assert long == {}, f"split these by job (docs/architecture.md): {long}"


@pytest.mark.parametrize("package", ["sandbox", "runtime"])
def test_sandbox_and_runtime_never_import_the_gateway(package):
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            wrong += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names if n.startswith("lambdalet.gateway")]
    assert wrong == []


def test_every_gateway_package_is_installed():
    """pyproject lists packages one by one: a room left out of it would work
    in an editable install and be missing from a wheel."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    # A folder that package-dir installs under another name (the top-level
    # `lambdalet` package's, gateway/app/toplevel) is installed as that name.
    renamed = {ROOT / folder: name for name, folder in setuptools["package-dir"].items()}
    found = {renamed.get(p.parent, "lambdalet." + ".".join(_module_of(p.parent / "__init__.py"))) for p in GATEWAY.rglob("__init__.py")}
    assert found - listed == set()


def test_the_lambdalet_package_is_the_embedding_api():
    """`import lambdalet` gives the embedding API, and its folder holds
    nothing else that would be installed twice under two names."""
    import lambdalet
    from lambdalet.gateway.app.root import Lambdalet

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folder = ROOT / setuptools["package-dir"]["lambdalet"]
    assert "lambdalet" in setuptools["packages"]
    assert [p.name for p in folder.iterdir() if p.name != "__pycache__"] == ["__init__.py"]
    assert lambdalet.Lambdalet is Lambdalet
