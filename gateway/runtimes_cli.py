"""`lambdalet runtimes`: which Python runtimes this host can run, and
`lambdalet runtimes install`, which gives other Python versions than the
server's their own msgspec and cffi builds (README: Runtimes).

Runs on this host, not against a server: it looks at the interpreters
themselves."""
from __future__ import annotations

import argparse

from .config import default_cache_dir


def _found(args, user_error: type[Exception]):
    from lambdalet.sandbox import interpreters

    from .runtimes import parse_pairs

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
        print(f"{name}\tPython {interpreter.version}\t{interpreter.path} ({interpreter.found})\t"
              f"frames: {root.codec}; workers: {mode}; builds: {deps}")
    for note in notes:
        print(f"skipped: {note}")
    return 0


def cmd_install(args, user_error: type[Exception]) -> int:
    import sys

    from lambdalet.sandbox.runtime_root import install_deps

    found, _ = _found(args, user_error)
    wanted = args.runtimes or [n for n, i in found.items() if i.cache_tag != sys.implementation.cache_tag]
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


def add_parsers(sub, user_error: type[Exception]) -> None:
    p = sub.add_parser("runtimes", help="the Python runtimes this host can run (and `runtimes install`)")
    p.add_argument("--python", action="append", metavar="RUNTIME=PATH",
                   help="an interpreter to use for RUNTIME (as `serve --python`); repeatable")
    p.set_defaults(func=lambda args: cmd_ls(args, user_error))
    ops = p.add_subparsers(dest="runtimes_command")
    i = ops.add_parser("install", help="install msgspec and cffi built for other Python versions (pip, wheels only)")
    i.add_argument("runtimes", nargs="*", metavar="RUNTIME", help="e.g. python3.12 (default: every version but the server's)")
    i.add_argument("--python", action="append", metavar="RUNTIME=PATH", default=argparse.SUPPRESS)
    i.add_argument("--find-links", metavar="DIR", help="a directory of wheels (for a host without network)")
    i.add_argument("--offline", action="store_true", help="use only --find-links, never an index")
    i.set_defaults(func=lambda args: cmd_install(args, user_error))

