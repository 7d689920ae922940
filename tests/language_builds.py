"""Builds the language tests deploy, once per source version.

- the Maven project in tests/languages/java (`mvn package`: a shaded jar;
  and its classes with their dependencies in lib/, a zip as AWS also takes);
- the C# sample in tests/languages/dotnet (mcs, against Lambdalet's
  Amazon.Lambda.Core contract);
- AWS's Node.js runtime interface client, aws-lambda-ric, from npm (its
  native part built from source by its install scripts);
- the Java runtime's own files (`lambdalet runtimes install java`), in the
  cache every server on this host reads.

Each result is kept in the test cache (tests/runtime_builds.py's, keyed by
a hash of the sources and the toolchain), so a run builds each at most
once and a later run on the same machine not at all. A missing toolchain
is an error, never a skip: these machines have them (docs/architecture.md).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import pathlib
import shutil
import subprocess
import tempfile
import zipfile

import runtime_builds
from runtime_builds import ToolMissing, cache_dir, tool

SOURCES = pathlib.Path(__file__).parent / "languages"
AWS_LAMBDA_RIC = "aws-lambda-ric@3.3.0"  # the last release for Node.js 20 (4.x needs 22)


def _digest(root: pathlib.Path, *extra: str) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    for text in extra:
        h.update(text.encode() + b"\0")
    return h.hexdigest()[:20]


def _version(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True)
    return (proc.stdout + proc.stderr).strip()


def _run(argv: list[str], cwd: pathlib.Path, timeout: int = 1800, env: dict | None = None) -> None:
    proc = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def _cached_dir(name: str, key: str, build) -> pathlib.Path:
    """A directory of results for key, made by build(workdir, out) on first use."""
    root = cache_dir()
    final = root / f"{name}-{key}"
    if final.exists():
        return final
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.exists():
            return final
        work = pathlib.Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
        try:
            out = work / "out"
            out.mkdir()
            build(work, out)
            os.rename(out, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final


def _zip_tree(root: pathlib.Path, prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + str(path.relative_to(root)))
    return buf.getvalue()


def java_sample() -> tuple[bytes, bytes]:
    """(the shaded jar, a zip of the classes with lib/*.jar)."""
    mvn = tool("mvn")
    key = _digest(SOURCES / "java", _version([mvn, "-v"]))

    def build(work: pathlib.Path, out: pathlib.Path) -> None:
        src = work / "src"
        shutil.copytree(SOURCES / "java", src)
        _run([mvn, "-q", "-B", "package"], src)
        _run(
            [
                mvn,
                "-q",
                "-B",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={src / 'target' / 'classes' / 'lib'}",
            ],
            src,
        )
        shutil.copy(src / "target" / "sample.jar", out / "sample.jar")
        (out / "sample-lib.zip").write_bytes(_zip_tree(src / "target" / "classes"))

    built = _cached_dir("java-sample", key, build)
    return (built / "sample.jar").read_bytes(), (built / "sample-lib.zip").read_bytes()


def java_runtime() -> pathlib.Path:
    """The Java runtime's files in the cache servers read (as `lambdalet
    runtimes install java` builds them)."""
    from lambdalet.gateway.app.config import default_cache_dir
    from lambdalet.gateway.execution import java_build
    from lambdalet.sandbox import languages

    toolchains, _ = languages.discover()
    if not any(t.language == "java" for t in toolchains.values()):
        raise ToolMissing("no JDK under /usr/lib/jvm: this project's machines have Java 17 (docs/architecture.md)")
    return java_build.build(default_cache_dir(), toolchains, mvn=tool("mvn"))


def dotnet_runtime() -> pathlib.Path:
    """The C# runtime's files in the cache servers read (compiled by a
    server at start-up; here first, for the sample to compile against)."""
    from lambdalet.gateway.app.config import default_cache_dir
    from lambdalet.gateway.execution import dotnet_build
    from lambdalet.sandbox import languages

    toolchains, _ = languages.discover()
    mono = toolchains.get("dotnet8")
    if mono is None:
        raise ToolMissing("no Mono: .ci/run installs Debian's mono-runtime and mono-mcs")
    try:
        return dotnet_build.build(default_cache_dir(), mono.version)
    except dotnet_build.BuildError as exc:
        raise ToolMissing(str(exc)) from None


def dotnet_sample() -> bytes:
    """The C# sample compiled by mcs, zipped as `dotnet lambda package` would
    (the function's assembly and the Amazon.Lambda.* assemblies it uses)."""
    runtime = dotnet_runtime()
    mcs = tool("mcs")
    key = _digest(SOURCES / "dotnet", _version([mcs, "--version"]), runtime.name)

    def build(work: pathlib.Path, out: pathlib.Path) -> None:
        _run(
            [
                mcs,
                "-nologo",
                "-target:library",
                f"-out:{out / 'Sample.dll'}",
                f"-r:{runtime / 'Amazon.Lambda.Core.dll'}",
                f"-r:{runtime / 'Amazon.Lambda.Serialization.SystemTextJson.dll'}",
                str(SOURCES / "dotnet" / "Sample.cs"),
            ],
            work,
        )
        for name in ("Amazon.Lambda.Core.dll", "Amazon.Lambda.Serialization.SystemTextJson.dll"):
            shutil.copy(runtime / name, out / name)

    built = _cached_dir("dotnet-sample", key, build)
    return _zip_tree(built)


def aws_lambda_ric() -> dict[str, bytes]:
    """aws-lambda-ric as a function zip carries it: node_modules/aws-lambda-ric/..."""
    npm = tool("npm")
    node = tool("node")
    key = hashlib.sha256(f"{AWS_LAMBDA_RIC}\0{_version([node, '--version'])}".encode()).hexdigest()[:20]

    def build(work: pathlib.Path, out: pathlib.Path) -> None:
        (work / "package.json").write_text('{"name": "ric-build", "version": "1.0.0", "private": true}\n')
        _run([npm, "install", "--no-audit", "--no-fund", "--foreground-scripts", AWS_LAMBDA_RIC], work, timeout=2400)
        package = work / "node_modules" / "aws-lambda-ric"
        for part in ("package.json", "bin", "dist"):
            source = package / part
            if source.is_dir():
                shutil.copytree(source, out / part)
            else:
                shutil.copy(source, out / part)

    built = _cached_dir("aws-lambda-ric", key, build)
    return {f"node_modules/aws-lambda-ric/{p.relative_to(built)}": p.read_bytes() for p in sorted(built.rglob("*")) if p.is_file()}


__all__ = ["ToolMissing", "java_sample", "java_runtime", "dotnet_runtime", "dotnet_sample", "aws_lambda_ric", "runtime_builds"]
