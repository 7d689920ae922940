"""The `lambdalet` command line.

Every subcommand but `serve` is a client of the server's Lambda API through
boto3, so the CLI exercises exactly what users' own tools do. User errors
print one line and exit non-zero; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pathlib
import signal
import sys

from .arg_types import Parser
from .client import SignatureRefused, UserError, call, credentials, data_dir, endpoint, http_error, refusal_hint
from .client import client as make_client
from .packaging import guess_handler, package
from .serve_cli import add_parser as add_serve_parser


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--env expects KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def cmd_deploy(args) -> int:
    client = make_client(args)
    code = package(args.source)
    # Only what the user gave: an update keeps the function's other settings
    # (its handler and runtime above all), as UpdateFunctionConfiguration does.
    given: dict = {}
    if args.handler is not None:
        given["Handler"] = args.handler
    if args.runtime is not None:
        given["Runtime"] = args.runtime
    if args.memory is not None:
        given["MemorySize"] = args.memory
    if args.timeout is not None:
        given["Timeout"] = args.timeout
    if args.env:
        given["Environment"] = {"Variables": _parse_env(args.env)}
    import botocore.exceptions

    try:
        client.get_function_configuration(FunctionName=args.name)
        exists = True
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            err = exc.response.get("Error", {})
            raise http_error(err.get("Code", "Error"), err.get("Message", str(exc))) from None
        exists = False
    except botocore.exceptions.EndpointConnectionError as exc:
        raise UserError(f"cannot reach the server: {exc}") from None
    wait = {"FunctionName": args.name, "WaiterConfig": {"Delay": 1, "MaxAttempts": 60}}
    signing = {"CodeSigningConfigArn": args.code_signing_config} if args.code_signing_config else {}
    if exists:
        if signing:
            # The config first: the package must then pass it.
            call(client.put_function_code_signing_config, FunctionName=args.name, **signing)
        conf = call(client.update_function_code, FunctionName=args.name, ZipFile=code)
        if given:
            call(client.get_waiter("function_updated_v2").wait, **wait)
            conf = call(client.update_function_configuration, FunctionName=args.name, **given)
        verb = "updated"
    else:
        given.setdefault("Handler", guess_handler(pathlib.Path(args.source)))
        given.setdefault("Runtime", f"python{sys.version_info[0]}.{sys.version_info[1]}")
        conf = call(
            client.create_function,
            FunctionName=args.name,
            Role="arn:aws:iam::000000000000:role/lambdalet",
            Code={"ZipFile": code},
            **given,
            **signing,
        )
        verb = "created"
    call(client.get_waiter("function_active_v2").wait, **wait)
    if exists:
        call(client.get_waiter("function_updated_v2").wait, **wait)
    print(
        f"{verb} {conf['FunctionName']} ({conf['Runtime']}, {conf['Handler']}, {conf['MemorySize']} MB, {conf['Timeout']} s) sha256={conf['CodeSha256']}"
    )
    return 0


def cmd_invoke(args) -> int:
    client = make_client(args)
    payload = args.payload or "{}"
    if payload.startswith("@"):
        try:
            payload = pathlib.Path(payload[1:]).read_text()
        except OSError as exc:
            raise UserError(f"cannot read payload file: {exc.strerror}: {payload[1:]}") from None
    try:
        json.loads(payload)
    except ValueError as exc:
        raise UserError(f"--payload is not valid JSON: {exc}") from None
    kwargs = {"FunctionName": args.name, "Payload": payload.encode()}
    if args.tail:
        kwargs["LogType"] = "Tail"
    resp = call(client.invoke, **kwargs)
    body = resp["Payload"].read().decode(errors="replace")
    if args.tail and resp.get("LogResult"):
        sys.stderr.write(base64.b64decode(resp["LogResult"]).decode(errors="replace"))
    print(body)
    return 1 if resp.get("FunctionError") else 0


def cmd_ls(args) -> int:
    client = make_client(args)
    paginator = client.get_paginator("list_functions")
    rows = []
    try:
        for page in call(lambda: list(paginator.paginate())):
            for f in page["Functions"]:
                rows.append((f["FunctionName"], f["Runtime"], f["Handler"], str(f["MemorySize"]), f["LastModified"]))
    except UserError:
        raise
    if args.json:
        print(json.dumps([dict(zip(("name", "runtime", "handler", "memory", "last_modified"), r)) for r in rows], indent=2))
        return 0
    header = ("NAME", "RUNTIME", "HANDLER", "MEMORY", "LAST MODIFIED")
    widths = [max(len(x) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def cmd_rm(args) -> int:
    client = make_client(args)
    call(client.delete_function, FunctionName=args.name)
    print(f"deleted {args.name}")
    return 0


def cmd_bench(args) -> int:
    from .loadgen import main_bench

    if args.connections < 1 or args.duration <= 0 or (args.rate is not None and args.rate <= 0):
        raise UserError("-c must be at least 1, and -d and --rate must be positive")
    payload = (args.payload or "").encode()
    if not args.target.startswith(("http://", "https://")):
        # A missing function, a dead server or keys it does not know: say so
        # now, not after a whole run of errors.
        call(make_client(args).get_function_configuration, FunctionName=args.target)

    try:
        return main_bench(
            args.target, args.connections, args.duration, args.rate, args.json, payload, endpoint(args), lambda: credentials(args)
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None


def cmd_doctor(args) -> int:
    from .doctor import report

    print(report(data_dir(args)))
    return 0


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("lambdalet")
    except metadata.PackageNotFoundError:
        return "unknown"


def _common_options() -> tuple[Parser, Parser]:
    """--data-dir and --endpoint, accepted after a subcommand as well as
    before it. SUPPRESS: a subcommand that was not given one keeps the value
    given before it (or the top-level default)."""
    data = Parser(add_help=False)
    data.add_argument(
        "--data-dir", default=argparse.SUPPRESS, help="data directory (default: $LAMBDALET_DATA_DIR or ~/.local/share/lambdalet)"
    )
    client = Parser(add_help=False, parents=[data])
    client.add_argument("--endpoint", default=argparse.SUPPRESS, help="server URL (default: $LAMBDALET_ENDPOINT or http://127.0.0.1:9000)")
    return data, client


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lambdalet", description="A self-hosted AWS Lambda for Linux hosts.")
    parser.add_argument("--version", action="version", version=f"lambdalet {_version()}")
    parser.add_argument("--endpoint", help="server URL (default: $LAMBDALET_ENDPOINT or http://127.0.0.1:9000)")
    parser.add_argument("--data-dir", help="data directory (default: $LAMBDALET_DATA_DIR or ~/.local/share/lambdalet)")
    data_opt, client_opts = _common_options()
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_serve_parser(sub, [data_opt])

    from .usage_cli import add_parsers as add_usage_parsers

    add_usage_parsers(sub, UserError, make_client, endpoint, parents=[client_opts])

    from .url_cli import add_parsers as add_url_parsers

    add_url_parsers(sub, UserError, make_client, call, parents=[client_opts])

    from .signing_cli import add_parsers as add_signing_parsers

    add_signing_parsers(sub, parents=[client_opts])

    from .runtimes_cli import add_parsers as add_runtimes_parsers

    add_runtimes_parsers(sub, UserError)

    p = sub.add_parser("deploy", help="create a function, or update it if it exists", parents=[client_opts])
    p.add_argument("source", metavar="DIR|ZIP", help="a directory (zipped for you) or a .zip file")
    p.add_argument("--name", required=True, help="the function's name")
    p.add_argument(
        "--handler",
        help="module.function (default when creating: guessed from lambda_function.py, app.py, handler.py or main.py; an update keeps the function's)",
    )
    p.add_argument("--runtime", help="e.g. python3.11 (default when creating: this Python's version; an update keeps the function's)")
    p.add_argument("--memory", type=int, help="MemorySize in MB (default when creating: 128; an update keeps the function's)")
    p.add_argument("--timeout", type=int, help="Timeout in seconds (default when creating: 3; an update keeps the function's)")
    p.add_argument(
        "--env", action="append", metavar="K=V", help="an environment variable; repeat for more (replaces all of them on an update)"
    )
    p.add_argument(
        "--code-signing-config",
        metavar="ARN",
        help="the code signing config the function follows (lambdalet signing-config create); the package must pass it",
    )
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("invoke", help="call a function and print its response", parents=[client_opts])
    p.add_argument("name", help="function name, optionally with :version or :alias")
    p.add_argument("--payload", help="JSON, or @file (default: {})")
    p.add_argument("--tail", action="store_true", help="print the call's log to stderr")
    p.set_defaults(func=cmd_invoke)

    p = sub.add_parser("ls", help="list functions", parents=[client_opts])
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("rm", help="delete a function", parents=[client_opts])
    p.add_argument("name", help="function name")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("bench", help="load-test a function (by name) or a URL", parents=[client_opts])
    p.add_argument("target", metavar="TARGET", help="function name, or http:// URL (e.g. a function URL)")
    p.add_argument("-c", "--connections", type=int, default=16, help="concurrent connections")
    p.add_argument("-d", "--duration", type=float, default=10.0, help="seconds")
    p.add_argument("--rate", type=float, default=None, help="requests/s, open loop (safe from coordinated omission; default: closed loop)")
    p.add_argument("--payload", help="request body (JSON for a function name)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("doctor", help="what this host supports, what is active, and whether a server runs", parents=[data_opt])
    p.set_defaults(func=cmd_doctor)

    from .console_cli import add_parsers as add_console_parsers

    add_console_parsers(sub, UserError, parents=[data_opt])

    from .async_cli import add_commands as add_async_commands

    add_async_commands(sub, parents=[client_opts])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
        # Flushed here, not at exit, so that a reader gone away is caught below.
        sys.stdout.flush()
        return code
    except SignatureRefused as exc:
        hint = refusal_hint(args, exc)
        print(f"lambdalet: {exc}" + (f"\n{hint}" if hint else ""), file=sys.stderr)
        return 1
    except UserError as exc:
        print(f"lambdalet: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `lambdalet ls | head`: the reader has what it wanted. Point stdout
        # at /dev/null so the interpreter's last flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # Run the package's own module, not this __main__ copy of it, so that
    # one copy of each function and class is in play.
    from lambdalet.gateway.cli.commands import main as _main

    sys.exit(_main())
