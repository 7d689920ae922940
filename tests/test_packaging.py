"""What `pip install .` (not -e) installs: the wheel built from this
checkout holds every file of the folders pyproject's package-dir maps
(gateway/, sandbox/, runtime/, csrc/, the lambdalet package's own), not
only their Python modules. The Node.js runtime's
JavaScript, the C# runtime's sources, the Java launcher's project and the
console's templates and assets are read from the installed package at run
time; a wheel without them installs a server that cannot run those
functions or serve the console.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Made by the build, or the build's own inputs: not package contents.
NOT_SHIPPED = {"csrc/_native.c", "csrc/.gitignore"}


def _package_dirs() -> dict[str, str]:
    """pyproject's package-dir: folder of the checkout -> where it installs."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        mapping = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return {folder: package.replace(".", "/") for package, folder in mapping.items()}


def _package_files() -> set[str]:
    dirs = _package_dirs()
    out = set()
    for top in dirs:
        for path in (ROOT / top).rglob("*"):
            rel = path.relative_to(ROOT).as_posix()
            if path.is_dir() or "__pycache__" in path.parts or path.suffix in (".so", ".pyc", ".o") or rel in NOT_SHIPPED:
                continue
            # The most specific folder that holds it decides where it goes.
            folder = max((d for d in dirs if rel.startswith(d + "/")), key=len)
            if folder == top:
                out.add(dirs[folder] + rel[len(folder) :])
    return out


def test_the_wheel_holds_every_file_of_its_packages(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", "__pycache__", "*.so", "*.egg-info", "build", ".venv*", ".pytest_cache", "test-artifacts", "target"
        ),
    )
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (tmp_path / "dist").glob("lambdalet-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = set(zf.namelist())
    expected = _package_files()
    assert any(name.startswith("lambdalet/runtime/node/") for name in expected)  # the walk found the data files
    assert sorted(expected - shipped) == []
