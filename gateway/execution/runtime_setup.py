"""The server's runtimes at start-up: find the interpreters, apply the
operator's --python and --runtime-map, build a runtime root per interpreter,
and say what came of it (start-up lines, `<data-dir>/runtimes.json` for
`lambdalet doctor`)."""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import time
from typing import NamedTuple

import msgspec

from lambdalet.sandbox import interpreters, languages
from lambdalet.sandbox.interpreters import Interpreter
from lambdalet.sandbox.languages import Toolchain
from lambdalet.sandbox.runtime_root import RuntimeRoot
from lambdalet.sandbox.spec import SandboxBackend

from ..functions.runtimes import CUSTOM_RUNTIMES, DEPRECATED_BY_AWS, RuntimeCatalog, RuntimeConfigError
from . import dotnet_build, java_build

STATE_FILE = "runtimes.json"
MAX_NAMES = 10  # functions named per runtime in doctor's lines


class ServerRuntimes(NamedTuple):
    catalog: RuntimeCatalog
    default: RuntimeRoot  # the server's own interpreter's (or what --python put in its place)
    others: dict[str, RuntimeRoot]  # every other interpreter's, by runtime name
    notes: list[str]  # candidates passed over, for the start-up lines


def prepare(data_dir: pathlib.Path, cache_dir: pathlib.Path, pythons: dict[str, str], runtime_map: dict[str, str]) -> ServerRuntimes:
    """Raises ValueError (InterpreterError, RuntimeConfigError) for options
    the server cannot honour."""
    found, notes = interpreters.discover(pythons)
    toolchains, language_notes = languages.discover()
    built, unready = language_files(cache_dir, toolchains)
    mine = interpreters.own().runtime
    catalog = RuntimeCatalog(found, runtime_map, default=mine if mine in found else None, toolchains=toolchains, unready=unready)
    # Language runtimes run on the default interpreter's worker, which execs
    # them: their files are mounted beside it, under /var/runtime.
    default = RuntimeRoot.create(data_dir / "runtime", catalog.interpreters[catalog.default], cache_dir, extra_sources=built)
    others = {
        name: RuntimeRoot.create(data_dir / f"runtime-{name}", interpreter, cache_dir)
        for name, interpreter in catalog.interpreters.items()
        if name != catalog.default
    }
    return ServerRuntimes(catalog=catalog, default=default, others=others, notes=notes + language_notes)


JAVA_INSTALL = (
    "`lambdalet runtimes install java` builds them (Maven fetches AWS's runtime interface client); "
    "a server picks them up when it starts, so restart one that was running"
)


def language_files(cache_dir: pathlib.Path, toolchains: dict[str, Toolchain]) -> tuple[dict[str, pathlib.Path], dict[str, str]]:
    """What language runtimes mount under /var/runtime (by name there),
    and the runtimes that cannot run yet, with what would fix it."""
    built: dict[str, pathlib.Path] = {}
    unready: dict[str, str] = {}
    java = [name for name, t in toolchains.items() if t.language == "java"]
    if java:
        path = java_build.ready(cache_dir)
        if path is None:
            for name in java:
                unready[name] = f"the Java runtime's files are not built on this host: {JAVA_INSTALL}"
        else:
            built["java"] = path
    for name, t in toolchains.items():
        if t.language == "dotnet":
            try:
                built["dotnet"] = dotnet_build.build(cache_dir, t.version)
            except (dotnet_build.BuildError, OSError) as exc:
                unready[name] = f"the C# runtime host cannot be built here: {exc}"
    return built, unready


def language_status(runtime: str) -> str:
    """What a language runtime still lacks on this host ("" when ready)."""
    return ""


def roots(runtimes: ServerRuntimes) -> dict[str, RuntimeRoot]:
    return {runtimes.default.runtime: runtimes.default, **runtimes.others}


def how_workers_start(root: RuntimeRoot, backend: SandboxBackend) -> str:
    """Forked from the interpreter's zygote, or an interpreter per sandbox."""
    if backend.zygote_enabled:
        why = root.zygote_unavailable()
        start = "forked from its zygote" if why is None else f"an interpreter per sandbox ({why})"
    else:
        start = "an interpreter per sandbox"
    return f"workers: {start}; frames: {root.codec}"


def lines(runtimes: ServerRuntimes, backend: SandboxBackend) -> list[str]:
    """The start-up lines: each runtime, and the candidates passed over (a
    python3.X that would not start, or is another version than its name)."""
    return [*_lines(runtimes.catalog, roots(runtimes), backend), *(f"runtime candidate skipped: {note}" for note in runtimes.notes)]


def _lines(
    catalog: RuntimeCatalog, by_name: dict[str, RuntimeRoot], backend: SandboxBackend, users: dict[str, list[str]] | None = None
) -> list[str]:
    def used(runtime: str) -> str:
        if users is None:
            return ""
        names = users.get(runtime, [])
        return f"; functions: {', '.join(names[:MAX_NAMES])}{' ...' if len(names) > MAX_NAMES else ''}" if names else ""

    out = []
    for name, interpreter in catalog.interpreters.items():
        default = ", the default" if name == catalog.default else ""
        deprecated = "; deprecated by AWS, which no longer takes it for new functions" if name in DEPRECATED_BY_AWS else ""
        out.append(
            f"runtime {name}: Python {interpreter.version} at {interpreter.path} ({interpreter.found}{default}); "
            f"{how_workers_start(by_name[name], backend)}{deprecated}{used(name)}"
        )
    for name, t in catalog.toolchains.items():
        out.append(
            f"runtime {name}: {languages.DISPLAY[t.language]} {t.version} at {t.path} ({t.found}); over the Runtime API"
            f"{language_status(name)}{used(name)}"
        )
    for name in languages.LANGUAGE_RUNTIMES:
        if name not in catalog.toolchains and name not in catalog.mapping:
            why = catalog.unready.get(name) or languages.missing_reason(name, catalog.host_toolchains)
            out.append(f"runtime {name}: CANNOT RUN here: {why}{used(name)}")
    for source, target in catalog.mapping.items():
        what = (
            f"Python {catalog.interpreters[target].version}"
            if target in catalog.interpreters
            else f"{languages.DISPLAY[catalog.toolchains[target].language]} {catalog.toolchains[target].version}"
        )
        out.append(
            f"runtime {source}: MAPPED onto {target} ({what}) by "
            f"--runtime-map {source}={target}: its functions run on {target} and say so{used(source)}"
        )
    for runtime in sorted(
        set(users or {})
        - set(catalog.interpreters)
        - set(catalog.toolchains)
        - set(catalog.mapping)
        - set(languages.LANGUAGE_RUNTIMES)
        - set(CUSTOM_RUNTIMES)
    ):
        out.append(f"runtime {runtime}: CANNOT RUN on this host; their calls fail with InvalidRuntimeException{used(runtime)}")
    return out


def doctor_lines(data_dir: pathlib.Path, cache_dir: pathlib.Path, backend: SandboxBackend) -> list[str]:
    """The runtimes a server on this data dir runs (as the last one started
    said), or would find now, and which stored functions use each."""
    state = read_state(data_dir)
    if state is not None:
        catalog, raw = state
        head = f"runtimes, as the last server on this data dir (pid {raw.get('pid', '?')}, started {raw.get('started', '?')}) set them up:"
    else:
        found, _ = interpreters.discover()
        toolchains, _ = languages.discover()
        _built, unready = language_files(cache_dir, toolchains)
        catalog = RuntimeCatalog(found, default=interpreters.own().runtime, toolchains=toolchains, unready=unready)
        head = "runtimes a server would find now (none has started on this data dir):"
    by_name = {name: RuntimeRoot(data_dir / "runtime", i, cache_dir) for name, i in catalog.interpreters.items()}
    return [
        head,
        *(f"  {line}" for line in _lines(catalog, by_name, backend, function_runtimes(data_dir))),
        "  (`lambdalet runtimes` lists the interpreters on this host; README: Runtimes)",
    ]


class _Runtime(msgspec.Struct):
    name: str
    runtime: str


def function_runtimes(data_dir: pathlib.Path) -> dict[str, list[str]]:
    """runtime -> the functions (and versions) that use it, read from
    lambdalet.db without a server (WAL lets a reader in beside one)."""
    path = data_dir / "lambdalet.db"
    if not path.exists():
        return {}
    decode = msgspec.json.Decoder(_Runtime).decode
    out: dict[str, set[str]] = {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT record FROM functions UNION ALL SELECT record FROM versions").fetchall()
    except sqlite3.Error:
        return {}
    finally:
        db.close()
    for (record,) in rows:
        try:
            rec = decode(record)
        except msgspec.DecodeError:
            continue
        out.setdefault(rec.runtime, set()).add(rec.name)
    return {runtime: sorted(names) for runtime, names in out.items()}


def write_state(data_dir: pathlib.Path, runtimes: ServerRuntimes) -> None:
    """What this server runs, for `lambdalet doctor` (it has no other way
    to learn the server's --python and --runtime-map)."""
    catalog = runtimes.catalog
    state = {
        "toolchains": {name: msgspec.to_builtins(t) for name, t in catalog.toolchains.items()},
        "unready": dict(catalog.unready),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "default": catalog.default,
        "interpreters": {name: msgspec.to_builtins(i) for name, i in catalog.interpreters.items()},
        "runtime_map": dict(catalog.mapping),
    }
    path = data_dir / STATE_FILE
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f, indent=1)
    os.replace(tmp, path)


def read_state(data_dir: pathlib.Path) -> tuple[RuntimeCatalog, dict] | None:
    """The catalog the last server on this data dir started with, and the
    rest of its state, or None."""
    try:
        state = json.loads((data_dir / STATE_FILE).read_text())
        found = {name: msgspec.convert(i, Interpreter) for name, i in state["interpreters"].items()}
        toolchains = {name: msgspec.convert(t, Toolchain) for name, t in (state.get("toolchains") or {}).items()}
        return RuntimeCatalog(
            found, state.get("runtime_map") or {}, default=state.get("default"), toolchains=toolchains, unready=state.get("unready") or {}
        ), state
    except (OSError, ValueError, KeyError, TypeError, msgspec.ValidationError, RuntimeConfigError):
        return None
