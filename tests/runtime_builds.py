"""Builds of the real runtime clients' sample bootstraps, once per source.

tests/custom_runtimes/ holds an aws-lambda-go program and a Rust
lambda_runtime program; this module builds each with its toolchain, its
dependencies fetched from their registries (the Go module proxy,
crates.io), and keeps the result in a cache directory keyed by a hash of
the sources and the toolchain's version: a test run builds each at most
once, and a later run on the same machine not at all. Concurrent runs
share the cache safely (a lock per build, results renamed into place).

The cache is ~/.cache/lambdalet-tests, or $LAMBDALET_TEST_CACHE. A missing
toolchain is an error, never a skip: these machines have Go and Rust.
bench/ uses the same builds.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import pathlib
import shutil
import subprocess
import tempfile

SOURCES = pathlib.Path(__file__).parent / "custom_runtimes"
TOOL_DIRS = ("/usr/local/go/bin", os.path.expanduser("~/.cargo/bin"), "/usr/local/bin", "/usr/bin")
# awslambdaric and what it imports, as pip installed them (from PyPI) with
# this project's test dependencies.
RIC_MODULES = ("awslambdaric", "runtime_client", "simplejson", "snapshot_restore_py")


class ToolMissing(RuntimeError):
    pass


def cache_dir() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("LAMBDALET_TEST_CACHE") or os.path.expanduser("~/.cache/lambdalet-tests"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def tool(name: str) -> str:
    found = shutil.which(name) or next((f"{d}/{name}" for d in TOOL_DIRS if os.access(f"{d}/{name}", os.X_OK)), None)
    if found is None:
        raise ToolMissing(f"{name} is not installed: this project's machines have it (docs/architecture.md, polyglot kind)")
    return found


def _digest(files: list[pathlib.Path], *extra: str) -> str:
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(str(path.relative_to(SOURCES)).encode() + b"\0" + path.read_bytes() + b"\0")
    for text in extra:
        h.update(text.encode() + b"\0")
    return h.hexdigest()[:20]


def _version(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def _cached(name: str, key: str, build) -> pathlib.Path:
    """The artefact for key, built by build(workdir) -> path on first use."""
    root = cache_dir()
    final = root / f"{name}-{key}"
    if final.exists():
        return final / "bootstrap"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.exists():
            return final / "bootstrap"
        work = pathlib.Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
        try:
            built = build(work)
            out = work / "out"
            out.mkdir()
            shutil.copy2(built, out / "bootstrap")
            os.chmod(out / "bootstrap", 0o755)
            os.rename(out, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final / "bootstrap"


def _run(argv: list[str], cwd: pathlib.Path, env: dict[str, str], timeout: int = 1800) -> None:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **env})
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")


def go_bootstrap() -> pathlib.Path:
    """aws-lambda-go's sample, a static binary (CGO off)."""
    go = tool("go")
    files = sorted((SOURCES / "go").glob("*"))
    key = _digest(files, _version([go, "version"]))

    def build(work: pathlib.Path) -> pathlib.Path:
        src = work / "src"
        shutil.copytree(SOURCES / "go", src)
        _run(
            [go, "build", "-trimpath", "-tags", "lambda.norpc", "-ldflags", "-s -w", "-o", str(work / "bootstrap"), "."],
            src,
            {"CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly -buildvcs=false"},
        )
        return work / "bootstrap"

    return _cached("go", key, build)


def rust_bootstrap() -> pathlib.Path:
    """Rust lambda_runtime's sample, linked against the host's glibc (the
    sandbox binds the host's /lib and /usr, as provided.al2023 has its own)."""
    cargo = tool("cargo")
    rustc = tool("rustc")
    files = [p for p in (SOURCES / "rust").rglob("*") if p.is_file()]
    key = _digest(files, _version([rustc, "--version"]))

    def build(work: pathlib.Path) -> pathlib.Path:
        src = work / "src"
        shutil.copytree(SOURCES / "rust", src)
        # One target directory for every source version: dependencies are
        # compiled once, not once per change to the sample.
        target = cache_dir() / "rust-target"
        _run(
            [cargo, "build", "--release", "--locked", "--target-dir", str(target)],
            src,
            {"PATH": f"{os.path.dirname(rustc)}:{os.environ.get('PATH', '')}"},
        )
        return target / "release" / "bootstrap"

    return _cached("rust", key, build)


def ric_files() -> dict[str, bytes]:
    """awslambdaric's packages as a function zip carries them, under ric/."""
    out: dict[str, bytes] = {}
    for name in RIC_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            raise ToolMissing(f"{name} is a test dependency (pip install -e '.[test]')")
        origin = pathlib.Path(spec.origin)
        if spec.submodule_search_locations:
            for path in origin.parent.rglob("*"):
                if path.is_file() and "__pycache__" not in path.parts:
                    out[f"ric/{origin.parent.name}/{path.relative_to(origin.parent)}"] = path.read_bytes()
        else:
            out[f"ric/{origin.name}"] = origin.read_bytes()
    return out
