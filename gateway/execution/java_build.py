"""The Java runtime's files: AWS's runtime interface client from Maven
Central, Lambdalet's launcher, and class-data sharing archives.

`lambdalet runtimes install java` builds them once per host into
`<cache>/java/<key>` (key: a hash of runtime/java's pom and sources), and
every server started afterwards mounts that directory at /var/runtime/java
in Java functions' sandboxes:

- lib/       the RIC and its dependencies (mvn dependency:copy-dependencies,
             unmodified jars from Maven Central), and lambdalet-launcher.jar;
- jni/       the RIC's native client, unpacked from its jar once instead of
             into each sandbox's /tmp at each start;
- cds/       one class-data sharing archive per JDK on the host
             (java17.jsa, ...), recorded from the platform's own run of the
             runtime serving a few calls (java_training.py), with the
             classpath the sandbox uses: the training run sees this
             directory at /var/runtime/java too (a private mount
             namespace), so that the JVM accepts the archive there.

Maven and a JDK's javac are needed to build, nothing at run time but the
JDK. Without the build, Java runtimes are listed as not ready, saying how
to build them.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile
import zipfile

import lambdalet.runtime

from ...sandbox.languages import Toolchain
from . import java_training
from .languages import JAVA_MODULE_OPTIONS

SOURCES = pathlib.Path(lambdalet.runtime.__file__).parent / "java"
RIC_JAR_PREFIX = "aws-lambda-java-runtime-interface-client-"
SANDBOX_DIR = "/var/runtime/java"
MVN_TIMEOUT_S = 900
READY = "ready"  # written last: a directory without it is an interrupted build
TRAINING = "calls-v1"  # how archives are recorded (java_training.py): a new one rebuilds them
LAUNCHER_JAR = "lambdalet-launcher.jar"  # its manifest's Class-Path names the other jars


class BuildError(RuntimeError):
    pass


def key() -> str:
    """A hash of what the build depends on: runtime/java, and the options
    the archives are recorded with."""
    h = hashlib.sha256(" ".join(JAVA_MODULE_OPTIONS).encode() + b"\0" + TRAINING.encode() + b"\0")
    for path in sorted(p for p in SOURCES.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(SOURCES)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_dir(cache: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(cache) / "java" / key()


def ready(cache: pathlib.Path) -> pathlib.Path | None:
    """The built runtime directory, or None."""
    path = build_dir(cache)
    return path if (path / READY).exists() else None


def archive_name(toolchain: Toolchain) -> str:
    return f"{toolchain.runtime}.jsa"


def _run(argv: list[str], cwd: pathlib.Path | str | None = None, timeout: float = MVN_TIMEOUT_S, env: dict | None = None) -> str:
    try:
        proc = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"{argv[0]}: {exc}") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise BuildError(f"{' '.join(argv[:3])} ... failed:\n{tail}")
    return proc.stdout


def _manifest_line(name: str, value: str) -> str:
    """A manifest header, folded at 72 bytes as the jar format wants."""
    line = f"{name}: {value}"
    parts = [line[:72]] + [" " + line[i : i + 71] for i in range(72, len(line), 71)]
    return "\r\n".join(parts) + "\r\n"


def _jni_name() -> str:
    machine = platform.machine()
    arch = "aarch_64" if machine in ("aarch64", "arm64") else "x86_64"
    return f"jni/libaws-lambda-jni.linux-{arch}.so"


def _javac(toolchains: dict[str, Toolchain]) -> str:
    """The oldest JDK's javac: its classes load in every newer JVM."""
    for t in sorted((t for t in toolchains.values() if t.language == "java"), key=lambda t: int(t.runtime[4:])):
        javac = os.path.join(t.home, "bin", "javac")
        if os.access(javac, os.X_OK):
            return javac
    found = shutil.which("javac")
    if found is None:
        raise BuildError("no javac: install a JDK (openjdk-17-jdk-headless)")
    return found


def build(cache: pathlib.Path, toolchains: dict[str, Toolchain], mvn: str | None = None) -> pathlib.Path:
    """Builds (or completes) the runtime directory; returns it. Raises
    BuildError with the tool's last words."""
    final = build_dir(cache)
    if not (final / READY).exists():
        mvn = mvn or shutil.which("mvn")
        if mvn is None:
            raise BuildError("no Maven (mvn) on PATH: it fetches the runtime interface client from Maven Central")
        final.parent.mkdir(parents=True, exist_ok=True)
        work = pathlib.Path(tempfile.mkdtemp(prefix=".build-", dir=final.parent))
        try:
            lib = work / "lib"
            _run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "-f",
                    str(SOURCES / "pom.xml"),
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={lib}",
                    "-DincludeScope=runtime",
                ]
            )
            ric = next(lib.glob(RIC_JAR_PREFIX + "*.jar"), None)
            if ric is None:
                raise BuildError("Maven fetched no aws-lambda-java-runtime-interface-client jar")
            classes = work / "classes"
            _run(
                [
                    _javac(toolchains),
                    "--release",
                    "17",
                    "-cp",
                    ":".join(sorted(str(p) for p in lib.glob("*.jar"))),  # Warmup is a RequestHandler
                    "-d",
                    str(classes),
                    *map(str, sorted((SOURCES / "src").rglob("*.java"))),
                ]
            )
            # The jars in a fixed order, named by the launcher's manifest:
            # the classpath a CDS archive records must be the same at each start.
            deps = " ".join(sorted(p.name for p in lib.glob("*.jar")))
            with zipfile.ZipFile(lib / LAUNCHER_JAR, "w") as jar:
                jar.writestr("META-INF/MANIFEST.MF", f"Manifest-Version: 1.0\r\n{_manifest_line('Class-Path', deps)}\r\n")
                for path in sorted(classes.rglob("*.class")):
                    jar.write(path, str(path.relative_to(classes)))
            (work / "jni").mkdir()
            with zipfile.ZipFile(ric) as jar, open(work / "jni" / "libaws-lambda-jni.so", "wb") as out:
                out.write(jar.read(_jni_name()))
            (work / "cds").mkdir()
            for path in work.rglob("*"):
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
            os.chmod(work, 0o755)
            (work / READY).write_text(ric.name + "\n")
            shutil.rmtree(classes)
            try:
                os.rename(work, final)
            except OSError:
                if not (final / READY).exists():  # not another build that won the race
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    for toolchain in toolchains.values():
        if toolchain.language == "java" and not (final / "cds" / archive_name(toolchain)).exists():
            record_archive(final, toolchain)
    return final


def record_archive(built: pathlib.Path, toolchain: Toolchain) -> None:
    """A dynamic CDS archive for one JDK, recorded from the platform's own
    training run (java_training.py). Best effort: a JVM without the archive
    starts, only slower."""
    target = built / "cds" / archive_name(toolchain)
    tmp = built / "cds" / f".{archive_name(toolchain)}.{os.getpid()}"
    try:
        java_training.record(built, toolchain, tmp)
        os.chmod(tmp, 0o644)
        os.rename(tmp, target)
    except (java_training.TrainingError, OSError):
        tmp.unlink(missing_ok=True)
