"""Which Node.js, Java and .NET toolchains this host has, per Lambda runtime.

A function whose Runtime is nodejs20.x runs on a Node.js 20, java21 on a
JDK 21, and so on: never on another version that happens to be there
(`lambdalet serve --runtime-map nodejs22.x=nodejs20.x` says otherwise, out
loud). dotnet8 runs on Mono: .NET itself is in none of the registries these
hosts reach, and Mono runs the netstandard2.0 assemblies .NET 8 runs
(README: C# on Mono).

Where each is looked for:
- Node.js: `node` on PATH, /usr/local/bin, /usr/bin; the major version
  names the runtime (v20.x -> nodejs20.x);
- Java: every JDK under /usr/lib/jvm (Debian's and Temurin's packages put
  them there), then `java` on PATH; `java -version`'s major names the
  runtime (17 -> java17);
- Mono: `mono` on PATH, /usr/bin; any Mono 6 or later serves dotnet8.

A sandbox binds the host's /usr (and /bin, /lib) read-only, so a
toolchain elsewhere (~/.nvm, /opt/jdk) would not be visible inside one:
it is passed over, saying why. Each candidate is started once, in
parallel, to read its real version.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess

import msgspec

PROBE_TIMEOUT_S = 20.0
# Where a sandbox sees the host's files at the same path (sandbox/rootfs.py).
VISIBLE_DIRS = ("/usr/", "/bin/", "/lib/", "/lib64/", "/sbin/")

NODE_RUNTIMES = ("nodejs20.x", "nodejs22.x", "nodejs24.x")
JAVA_RUNTIMES = ("java17", "java21", "java25")
DOTNET_RUNTIMES = ("dotnet8",)
LANGUAGE_RUNTIMES = NODE_RUNTIMES + JAVA_RUNTIMES + DOTNET_RUNTIMES


class Toolchain(msgspec.Struct, frozen=True):
    """One language runtime found on this host."""

    runtime: str  # the Lambda runtime it serves: "nodejs20.x", "java17", "dotnet8"
    language: str  # "node", "java" or "dotnet"
    path: str  # the executable, symlinks resolved
    version: str  # "20.20.2", "17.0.15", "6.8.0.105" (Mono's)
    home: str  # a JDK's home (bin/java's parent's parent), else ""
    found: str  # where: "PATH", "/usr/bin", "/usr/lib/jvm"


DISPLAY = {"node": "Node.js", "java": "Java", "dotnet": "Mono"}  # what runs each, in doctor's words


def language_of(runtime: str) -> str | None:
    if runtime in NODE_RUNTIMES:
        return "node"
    if runtime in JAVA_RUNTIMES:
        return "java"
    if runtime in DOTNET_RUNTIMES:
        return "dotnet"
    return None


def _on_path(name: str) -> list[tuple[str, str]]:
    found = []
    path = shutil.which(name)
    if path:
        found.append((path, "PATH"))
    for d in ("/usr/local/bin", "/usr/bin"):
        full = f"{d}/{name}"
        if os.access(full, os.X_OK):
            found.append((full, d))
    return found


def _visible(path: str) -> bool:
    return path.startswith(VISIBLE_DIRS)


def _run(argv: list[str]) -> subprocess.Popen | str:
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as exc:
        return f"{argv[0]}: {exc.strerror}"


def _answer(proc: subprocess.Popen | str) -> str | None:
    """The probe's output, or None when it failed."""
    if isinstance(proc, str):
        return None
    try:
        out, _ = proc.communicate(timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    return out if proc.returncode == 0 else None


def _candidates() -> list[tuple[str, str, str]]:
    """(language, executable resolved, found), duplicates removed."""
    out: list[tuple[str, str, str]] = []
    for path, found in _on_path("node"):
        out.append(("node", os.path.realpath(path), found))
    for java in sorted(glob.glob("/usr/lib/jvm/*/bin/java")):
        out.append(("java", os.path.realpath(java), "/usr/lib/jvm"))
    for path, found in _on_path("java"):
        out.append(("java", os.path.realpath(path), found))
    for path, found in _on_path("mono"):
        out.append(("dotnet", os.path.realpath(path), found))
    seen: set[str] = set()
    unique = []
    for lang, path, found in out:
        if path not in seen:
            seen.add(path)
            unique.append((lang, path, found))
    return unique


_JAVA_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?[^"]*"')


def _java_major(text: str) -> tuple[int, str] | None:
    m = _JAVA_VERSION.search(text)
    if m is None:
        return None
    major = int(m.group(1))
    if major == 1 and m.group(2):  # 1.8.0_392 is Java 8
        major = int(m.group(2))
    return major, m.group(0).split('"')[1]


def _probe_argv(lang: str, path: str) -> list[str]:
    if lang == "node":
        return [path, "--version"]
    if lang == "java":
        return [path, "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-version"]
    return [path, "--version"]


def _toolchain(lang: str, path: str, found: str, out: str) -> Toolchain | str:
    if lang == "node":
        m = re.match(r"v(\d+)\.(\d+)\.(\d+)", out.strip())
        if m is None:
            return f"{path}: not a Node.js (`--version` said {out.strip()[:40]!r})"
        return Toolchain(runtime=f"nodejs{m.group(1)}.x", language="node", path=path, version=out.strip()[1:], home="", found=found)
    if lang == "java":
        parsed = _java_major(out)
        if parsed is None:
            return f"{path}: not a JDK (`-version` said {out.strip()[:60]!r})"
        major, version = parsed
        return Toolchain(
            runtime=f"java{major}", language="java", path=path, version=version, home=os.path.dirname(os.path.dirname(path)), found=found
        )
    m = re.search(r"Mono JIT compiler version (\d+)\.([\d.]+)", out)
    if m is None:
        return f"{path}: not Mono (`--version` said {out.strip()[:60]!r})"
    if int(m.group(1)) < 6:
        return f"{path}: Mono {m.group(1)}.{m.group(2)} is too old for netstandard2.0 (Mono 6 or later)"
    return Toolchain(runtime="dotnet8", language="dotnet", path=path, version=f"{m.group(1)}.{m.group(2)}", home="", found=found)


@functools.lru_cache(maxsize=1)
def _discover() -> tuple[tuple[tuple[str, Toolchain], ...], tuple[str, ...]]:
    chosen, notes = _probe_all()
    return tuple(chosen.items()), tuple(notes)


def discover() -> tuple[dict[str, Toolchain], list[str]]:
    """The toolchain chosen for each language runtime this host can run,
    and notes on the candidates passed over (first found wins). Probed
    once per process."""
    chosen, notes = _discover()
    return dict(chosen), list(notes)


def _probe_all() -> tuple[dict[str, Toolchain], list[str]]:
    chosen: dict[str, Toolchain] = {}
    notes: list[str] = []
    started = []
    for lang, path, found in _candidates():
        if not _visible(path):
            notes.append(f"{path}: outside /usr, /bin and /lib, so no sandbox can see it")
            continue
        started.append((lang, path, found, _run(_probe_argv(lang, path))))
    for lang, path, found, proc in started:
        out = _answer(proc)
        if out is None:
            notes.append(f"{path}: did not start (`{' '.join(_probe_argv(lang, path)[1:])}` failed)")
            continue
        result = _toolchain(lang, path, found, out)
        if isinstance(result, str):
            notes.append(result)
        elif result.runtime not in LANGUAGE_RUNTIMES:
            notes.append(f"{path}: {result.language} {result.version} serves no Lambda runtime ({result.runtime} is not one)")
        elif result.runtime in chosen:
            notes.append(f"{path}: {result.runtime} is served by {chosen[result.runtime].path} already")
        else:
            chosen[result.runtime] = result
    order = {name: i for i, name in enumerate(LANGUAGE_RUNTIMES)}
    return dict(sorted(chosen.items(), key=lambda kv: order[kv[0]])), notes


def missing_reason(runtime: str, found: dict[str, Toolchain]) -> str:
    """Why this host cannot run a language runtime it lacks."""
    lang = language_of(runtime)
    if lang == "node":
        have = [t.version for t in found.values() if t.language == "node"]
        major = runtime[len("nodejs") : -2]
        return (
            f"no Node.js {major} on this host (it has {', '.join('Node.js ' + v for v in have) or 'no Node.js'}); "
            f"install one under /usr (Debian's or NodeSource's nodejs package), or map {runtime} onto a version "
            "it has with `lambdalet serve --runtime-map`"
        )
    if lang == "java":
        have = [f"{t.version} ({t.home})" for t in found.values() if t.language == "java"]
        return (
            f"no JDK {runtime[4:]} under /usr/lib/jvm (it has {', '.join(have) or 'none'}); install "
            f"openjdk-{runtime[4:]}-jdk-headless or a Temurin {runtime[4:]} package"
        )
    if lang == "dotnet":
        return "no Mono on this host (apt-get install mono-runtime mono-mcs): dotnet8 functions run on Mono here"
    return f"{runtime} is not a language runtime"
