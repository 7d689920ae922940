"""`lambdalet console-password`: set (or --clear) the web console's password.

Runs on the server's host, against its data directory (the server reads the
hash at each sign-in, so no restart is needed). The password is read from
the terminal twice, or once from standard input with --stdin.
"""

from __future__ import annotations

import argparse
import getpass
import pathlib
import sys

from ..app.config import default_data_dir


def cmd_console_password(args, user_error: type[Exception]) -> int:
    from ..console import password

    data_dir = pathlib.Path(args.data_dir) if getattr(args, "data_dir", None) else default_data_dir()
    if not data_dir.is_dir():
        raise user_error(f"no data directory at {data_dir}: start `lambdalet serve` once first, or pass --data-dir")
    if args.clear:
        removed = password.clear(data_dir)
        print("console password removed; sign in with the access key" if removed else "no console password was set")
        return 0
    if args.stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise user_error("no terminal to ask for the password on: pipe it in with --stdin")
        secret = getpass.getpass("New console password: ")
        if getpass.getpass("Again: ") != secret:
            raise user_error("the two passwords differ; nothing was changed")
    try:
        path = password.store(data_dir, secret)
    except password.PasswordError as exc:
        raise user_error(str(exc)) from None
    print(f"console password set ({path}); it takes effect at the next sign-in")
    return 0


def add_parsers(sub, user_error: type[Exception], parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("console-password", help="set the web console's password (or --clear it)", parents=parents)
    p.add_argument("--stdin", action="store_true", help="read the password from standard input (one line) instead of the terminal")
    p.add_argument("--clear", action="store_true", help="remove the password: only the access key signs in")
    p.set_defaults(func=lambda args: cmd_console_password(args, user_error))
