"""`lambdalet runtimes`: which Python runtimes this host can run, and
`lambdalet runtimes install`, which gives other Python versions than the
server's their own msgspec and cffi builds (README: Runtimes).

Runs on this host, not against a server: it looks at the interpreters
themselves."""

from __future__ import annotations

import argparse

from ..app.config import default_cache_dir


def _found(args, user_error: type[Exception]):
    from lambdalet.sandbox import interpreters

    from ..functions.runtimes import parse_pairs

    try:
        return interpreters.discover(parse_pairs(args.python, "--python"))
    except ValueError as exc:
        raise user_error(str(exc)) from None


def cmd_ls(args, user_error: type[Exception]) -> int:
    from lambdalet.sandbox.runtime_root import RuntimeRoot, deps_dir

    found, notes = _found(args, user_error)
    cache = default_cache_dir()
    for name, interpreter in found.items():
        root = RuntimeRoot(cache / "unused", interpreter, cache)
        why = root.zygote_unavailable()
        mode = "zygote" if why is None else f"an interpreter per sandbox ({why})"
        deps = deps_dir(cache, interpreter) if interpreter.found != "this server" else "this server's"
        print(
            f"{name}\tPython {interpreter.version}\t{interpreter.path} ({interpreter.found})\t"
            f"frames: {root.codec}; workers: {mode}; builds: {deps}"
        )
    from lambdalet.sandbox import languages

    from ..execution.runtime_setup import language_files

    toolchains, language_notes = languages.discover()
    _built, unready = language_files(cache, toolchains)
    for name, t in toolchains.items():
        state = f"NOT READY: {unready[name]}" if name in unready else "over the Runtime API"
        print(f"{name}\t{languages.DISPLAY[t.language]} {t.version}\t{t.path} ({t.found})\t{state}")
    for name in languages.LANGUAGE_RUNTIMES:
        if name not in toolchains:
            print(f"{name}\tCANNOT RUN: {languages.missing_reason(name, toolchains)}")
    for note in [*notes, *language_notes]:
        print(f"skipped: {note}")
    return 0


def cmd_install(args, user_error: type[Exception]) -> int:
    import sys

    from lambdalet.sandbox.runtime_root import install_deps

    requested = list(args.runtimes or [])
    java = [n for n in requested if n == "java" or n.startswith("java")]
    if java:
        requested = [n for n in requested if n not in java]
        status = _install_java(user_error)
        if not requested:
            return status
    found, _ = _found(args, user_error)
    wanted = requested or [n for n, i in found.items() if i.cache_tag != sys.implementation.cache_tag]
    missing = [n for n in wanted if n not in found]
    if missing:
        raise user_error(f"no interpreter for {', '.join(missing)} on this host (it has {', '.join(found)})")
    cache = default_cache_dir()
    failed = 0
    for name in wanted:
        interpreter = found[name]
        if interpreter.cache_tag == sys.implementation.cache_tag:
            print(f"{name}: uses this server's own msgspec and cffi")
            continue
        try:
            where = install_deps(interpreter, cache, find_links=args.find_links, offline=args.offline)
        except OSError as exc:
            failed += 1
            print(f"{name}: FAILED: {exc.strerror or exc}")
            continue
        print(f"{name}: msgspec and cffi for Python {interpreter.version} in {where}")
    if failed:
        print("Functions on those runtimes still run, with an interpreter per sandbox and pure-Python frames.")
    return 1 if failed else 0


def _install_java(user_error: type[Exception]) -> int:
    """The Java runtime's files: AWS's runtime interface client from Maven
    Central, the launcher, a CDS archive per JDK (execution/java_build.py)."""
    from lambdalet.sandbox import languages

    from ..execution import java_build

    toolchains, _ = languages.discover()
    jdks = [t for t in toolchains.values() if t.language == "java"]
    if not jdks:
        raise user_error("no JDK on this host (java17, java21 and java25 look under /usr/lib/jvm)")
    try:
        where = java_build.build(default_cache_dir(), toolchains)
    except java_build.BuildError as exc:
        print(f"java: FAILED: {exc}")
        return 1
    for t in jdks:
        archive = where / "cds" / java_build.archive_name(t)
        cds = "class-data sharing archive" if archive.exists() else "NO class-data sharing archive (slower starts)"
        print(f"{t.runtime}: JDK {t.version} at {t.home}; runtime in {where}; {cds}")
    print("A server picks the Java runtime up when it starts: restart `lambdalet serve` if one is running.")
    return 0


def add_parsers(sub, user_error: type[Exception]) -> None:
    p = sub.add_parser("runtimes", help="the Python runtimes this host can run (and `runtimes install`)")
    p.add_argument(
        "--python", action="append", metavar="RUNTIME=PATH", help="an interpreter to use for RUNTIME (as `serve --python`); repeatable"
    )
    p.set_defaults(func=lambda args: cmd_ls(args, user_error))
    ops = p.add_subparsers(dest="runtimes_command")
    i = ops.add_parser("install", help="install msgspec and cffi built for other Python versions (pip, wheels only)")
    i.add_argument(
        "runtimes",
        nargs="*",
        metavar="RUNTIME",
        help="e.g. python3.12 (default: every version but the server's), or java (the Java runtime's files)",
    )
    i.add_argument("--python", action="append", metavar="RUNTIME=PATH", default=argparse.SUPPRESS)
    i.add_argument("--find-links", metavar="DIR", help="a directory of wheels (for a host without network)")
    i.add_argument("--offline", action="store_true", help="use only --find-links, never an index")
    i.set_defaults(func=lambda args: cmd_install(args, user_error))
