"""Which Python interpreters this host has, one per Lambda runtime name.

A function whose Runtime is python3.12 runs on a Python 3.12 interpreter,
never on another version that says it is 3.12. The server looks for one per
version, in this order, and keeps the first that starts and reports the
version its name promises:

1. `--python python3.12=/path/to/python3.12` (lambdalet serve, repeatable);
2. the server's own interpreter, for its own version;
3. pyenv's versions (`$PYENV_ROOT/versions/*/bin/python3.X`, the newest
   patch release first);
4. `python3.X` on PATH (shims such as pyenv's, which cost ~100 ms a start
   and may pick any version, are skipped), then /usr/local/bin, /usr/bin.

Each candidate is started once, all in parallel (`python -I -S -c ...`,
~10 ms), to read its real version and ABI tag (which says which msgspec
build it can load).
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
from collections.abc import Iterable

import msgspec

PROBE_TIMEOUT_S = 10.0
# Runtime names this module looks for: the Python runtimes Lambda still
# offers (gateway/functions/runtimes.py holds the full list and the deprecated ones).
OLDEST_MINOR = 9
NAME_RE = re.compile(r"^python3\.(\d+)$")
# What a probe prints: major.minor, the full version, the ABI tag.
_PROBE = "import sys;print(sys.version_info[0],sys.version_info[1],sys.version.split()[0],sys.implementation.cache_tag,sep='\\n')"


class Interpreter(msgspec.Struct, frozen=True):
    """One interpreter, as the probe found it."""

    runtime: str  # the Lambda runtime it serves: "python3.12"
    path: str  # the executable, symlinks resolved (so no shim or venv wrapper sits between)
    version: str  # "3.12.1", what sys.version says inside
    prefix: str  # <prefix>/bin/python3.X: the installation the sandbox binds read-only at the same path
    cache_tag: str  # "cpython-312": the ABI its compiled extensions must match
    found: str  # where it came from: "--python", "this server", "pyenv", "PATH", "/usr/bin"


class InterpreterError(ValueError):
    """A --python option names something that is not that interpreter."""


def runtime_name(major: int, minor: int) -> str:
    return f"python{major}.{minor}"


def install_prefix(executable: str) -> str:
    """<prefix>/bin/python3.x -> <prefix>: where the interpreter finds its
    libraries by the paths baked in at build time."""
    return os.path.dirname(os.path.dirname(os.path.realpath(executable)))


def own() -> Interpreter:
    """The server's own interpreter (no probe needed): in a venv, the one
    the venv was made from (runtime_root.python_executable says why)."""
    base = getattr(sys, "_base_executable", "") or sys.executable
    path = os.path.realpath(base if os.access(base, os.X_OK) else sys.executable)
    return Interpreter(
        runtime=runtime_name(*sys.version_info[:2]),
        path=path,
        version=sys.version.split()[0],
        prefix=install_prefix(path),
        cache_tag=sys.implementation.cache_tag or "",
        found="this server",
    )


def _pyenv_root() -> pathlib.Path:
    return pathlib.Path(os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv"))


def _version_key(path: pathlib.Path) -> tuple:
    # ~/.pyenv/versions/3.12.10 sorts above 3.12.9
    return tuple(int(p) if p.isdigit() else -1 for p in re.split(r"[.\-]", path.parent.parent.name))


def _is_shim(path: str) -> bool:
    """A script standing in for an interpreter (pyenv's and asdf's shims
    are shell scripts): slow to start, and free to run another version."""
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return True


def candidates(explicit: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """(runtime, executable, found) in order of preference; several per
    runtime, duplicates (by resolved path) removed."""
    out: list[tuple[str, str, str]] = []
    for name, path in (explicit or {}).items():
        out.append((name, path, "--python"))
    mine = own()
    out.append((mine.runtime, mine.path, mine.found))
    pyenv = sorted(_pyenv_root().glob("versions/*/bin/python3.*"), key=_version_key, reverse=True)
    for version in pyenv:
        out.append((version.name, str(version), "pyenv"))
    path_dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    for where, dirs in (("PATH", path_dirs), ("/usr/local/bin", ["/usr/local/bin"]), ("/usr/bin", ["/usr/bin"])):
        for d in dirs:
            try:
                names = sorted(os.listdir(d))
            except OSError:
                continue
            for name in names:
                full = os.path.join(d, name)
                if NAME_RE.match(name) and os.access(full, os.X_OK) and not _is_shim(full):
                    out.append((name, full, where))
    seen: set[tuple[str, str]] = set()
    unique = []
    for name, path, found in out:
        m = NAME_RE.match(name)
        if not m or int(m.group(1)) < OLDEST_MINOR:
            if found == "--python":
                unique.append((name, path, found))  # refused by discover(), with a reason
            continue
        key = (name, os.path.realpath(path))
        if key not in seen:
            seen.add(key)
            unique.append((name, path, found))
    return unique


def probe(items: Iterable[tuple[str, str, str]]) -> list[Interpreter | str]:
    """Start every candidate at once; for each, the Interpreter or why not."""
    started: list[tuple[str, str, str, subprocess.Popen[str] | None, str]] = []
    for name, path, found in items:
        real = os.path.realpath(path)
        try:
            proc = subprocess.Popen(
                [real, "-I", "-S", "-c", _PROBE], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
        except OSError as exc:
            started.append((name, real, found, None, f"{path}: {exc.strerror}"))
            continue
        started.append((name, real, found, proc, ""))
    results: list[Interpreter | str] = []
    for name, real, found, child, error in started:
        if child is None:
            results.append(error)
            continue
        try:
            out, _ = child.communicate(timeout=PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            results.append(f"{real}: did not answer within {PROBE_TIMEOUT_S:.0f} s")
            continue
        lines = out.splitlines()
        if child.returncode != 0 or len(lines) != 4:
            results.append(f"{real}: not a Python 3 interpreter that runs with -I -S")
            continue
        major, minor, version, tag = lines
        actual = runtime_name(int(major), int(minor))
        if actual != name:
            results.append(f"{real} is Python {version}, not {name}")
            continue
        results.append(Interpreter(runtime=name, path=real, version=version, prefix=install_prefix(real), cache_tag=tag, found=found))
    return results


def discover(explicit: dict[str, str] | None = None) -> tuple[dict[str, Interpreter], list[str]]:
    """The interpreter chosen for each runtime name, and notes on the
    candidates that were passed over. Raises InterpreterError when an
    explicit --python is not what it claims to be: a server must not start
    with a runtime the operator named and does not get."""
    explicit = dict(explicit or {})
    for name, path in explicit.items():
        m = NAME_RE.match(name)
        if not m or int(m.group(1)) < OLDEST_MINOR:
            raise InterpreterError(f"--python {name}={path}: expected a Lambda Python runtime name, python3.{OLDEST_MINOR} or later")
        if not os.path.isabs(path):
            raise InterpreterError(f"--python {name}={path}: give the interpreter's absolute path")
    mine = own()
    chosen: dict[str, Interpreter] = {}
    notes: list[str] = []
    queues: dict[str, list[tuple[str, str, str]]] = {}
    for cand in candidates(explicit):
        queues.setdefault(cand[0], []).append(cand)
    if mine.runtime not in explicit:
        chosen[mine.runtime] = mine
    # In rounds: the most preferred untried candidate of every runtime still
    # open, all at once. One round on most hosts.
    while True:
        todo = [q.pop(0) for name, q in queues.items() if q and name not in chosen]
        if not todo:
            break
        for (name, path, found), result in zip(todo, probe(todo)):
            if isinstance(result, Interpreter):
                chosen[name] = result
            elif found == "--python":
                raise InterpreterError(f"--python {name}={path}: {result}")
            else:
                notes.append(result)
    return dict(sorted(chosen.items(), key=lambda kv: int(kv[0].split(".")[1]))), notes
