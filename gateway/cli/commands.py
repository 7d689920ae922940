"""The `lambdalet` command line.

Every subcommand but `serve` is a client of the server's Lambda API through
boto3, so the CLI exercises exactly what users' own tools do. User errors
print one line and exit non-zero; tracebacks are for bugs only.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import pathlib
import signal
import sys
import zipfile

from ..app.config import DEFAULT_PORT, DEFAULT_REGION, ServerConfig, default_data_dir


class UserError(Exception):
    """A mistake the user can fix; printed as one line."""


class SignatureRefused(UserError):
    """The server did not accept the request's signature; main() adds what
    the CLI signed with and how to fix it."""

    def __init__(self, message: str, *, clock: bool = False) -> None:
        super().__init__(message)
        self.clock = clock


# The errors a SigV4 verifier answers with (403), AWS's names for them.
SIGNATURE_ERRORS = frozenset(
    {"UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignatureException",
     "MissingAuthenticationTokenException", "InvalidClientTokenId", "SignatureDoesNotMatch"}
)


def http_error(code: str, message: str) -> UserError:
    """The UserError for a refused request, told apart when it is the signature."""
    if code in SIGNATURE_ERRORS:
        return SignatureRefused(f"{code}: {message}", clock="Signature expired" in message or "not yet current" in message)
    return UserError(f"{code}: {message}")


# -- client plumbing ---------------------------------------------------------


def _endpoint(args) -> str:
    return getattr(args, "endpoint", None) or os.environ.get("LAMBDALET_ENDPOINT") or f"http://127.0.0.1:{DEFAULT_PORT}"


def _data_dir(args) -> pathlib.Path:
    data_dir = getattr(args, "data_dir", None)
    return pathlib.Path(data_dir) if data_dir else default_data_dir()


def _credentials_with_source(args) -> tuple[str, str, str]:
    """(access key, secret, where they came from). The server's own keys,
    from <data-dir>/credentials, unless $LAMBDALET_ACCESS_KEY_ID and
    $LAMBDALET_SECRET_ACCESS_KEY say otherwise. AWS_ACCESS_KEY_ID,
    AWS_PROFILE and the rest are for AWS and are not used: keys for AWS
    mean nothing to this server."""
    import configparser

    key = os.environ.get("LAMBDALET_ACCESS_KEY_ID")
    secret = os.environ.get("LAMBDALET_SECRET_ACCESS_KEY")
    if key and secret:
        return key, secret, "$LAMBDALET_ACCESS_KEY_ID"
    creds_file = _data_dir(args) / "credentials"
    if not creds_file.exists():
        raise UserError(
            f"no credentials: {creds_file} does not exist (start `lambdalet serve` first, pass --data-dir, "
            "or set LAMBDALET_ACCESS_KEY_ID and LAMBDALET_SECRET_ACCESS_KEY)"
        )
    parser = configparser.ConfigParser()
    try:
        parser.read(creds_file)
        return parser["default"]["aws_access_key_id"], parser["default"]["aws_secret_access_key"], str(creds_file)
    except (KeyError, configparser.Error, PermissionError) as exc:
        raise UserError(f"cannot read credentials from {creds_file}: {exc}") from None


def _credentials(args) -> tuple[str, str]:
    key, secret, _source = _credentials_with_source(args)
    return key, secret


def _refusal_hint(args, exc: SignatureRefused) -> str:
    if exc.clock:
        return "  this machine's clock and the server's differ by more than 5 minutes; set the clocks right"
    try:
        key, _secret, source = _credentials_with_source(args)
    except UserError:
        return ""
    return (
        f"  the server at {_endpoint(args)} does not know the key lambdalet signed with ({key}, from {source}).\n"
        "  Point --data-dir (or $LAMBDALET_DATA_DIR) at the data dir that server printed when it started, or set\n"
        "  LAMBDALET_ACCESS_KEY_ID and LAMBDALET_SECRET_ACCESS_KEY to its keys. (AWS_ACCESS_KEY_ID, AWS_PROFILE\n"
        "  and other AWS settings are not used by lambdalet.)"
    )


def _client(args):
    import botocore.config
    import botocore.session

    key, secret = _credentials(args)
    # A session of our own that reads no AWS config or credentials files and
    # no AWS_PROFILE: a profile the user has for AWS (or lacks) must not
    # stop a command aimed at this server.
    session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    session.set_config_variable("config_file", os.devnull)
    session.set_config_variable("credentials_file", os.devnull)
    return session.create_client(
        "lambda",
        endpoint_url=_endpoint(args),
        region_name=os.environ.get("AWS_REGION", DEFAULT_REGION),
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=960, connect_timeout=5),
    )


def _call(fn, **kwargs):
    import botocore.exceptions

    try:
        return fn(**kwargs)
    except botocore.exceptions.ClientError as exc:
        err = exc.response.get("Error", {})
        raise http_error(err.get("Code", "Error"), err.get("Message", str(exc))) from None
    except botocore.exceptions.EndpointConnectionError as exc:
        raise UserError(f"cannot reach the server: {exc}") from None
    except botocore.exceptions.BotoCoreError as exc:
        raise UserError(str(exc)) from None


# -- packaging ---------------------------------------------------------------


def zip_directory(path: pathlib.Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(path.rglob("*")):
            rel = file.relative_to(path)
            if any(part in ("__pycache__", ".git") for part in rel.parts):
                continue
            if file.is_file() and not file.is_symlink():
                info = zipfile.ZipInfo(str(rel), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (file.stat().st_mode & 0o777 | 0o100000) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, file.read_bytes())
    return buf.getvalue()


def _package(source: str) -> bytes:
    path = pathlib.Path(source)
    if path.is_dir():
        data = zip_directory(path)
        if not _zip_entries(data):
            raise UserError(f"{source} holds no files to deploy (__pycache__ and .git are left out)")
        return data
    if path.is_file():
        data = path.read_bytes()
        if not zipfile.is_zipfile(io.BytesIO(data)):
            raise UserError(f"{source} is not a .zip file or a directory")
        if not _zip_entries(data):
            raise UserError(f"{source} is an empty .zip file")
        return data
    raise UserError(f"{source}: no such file or directory")


def _zip_entries(data: bytes) -> int:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return len(zf.infolist())
    except zipfile.BadZipFile:
        return 1  # not ours to judge: the server explains what is wrong with it


def _guess_handler(path: pathlib.Path) -> str:
    if path.is_dir():
        for candidate in ("lambda_function.py", "app.py", "handler.py", "main.py"):
            if (path / candidate).exists():
                name = candidate[:-3]
                return f"{name}.lambda_handler" if name == "lambda_function" else f"{name}.handler"
    return "lambda_function.lambda_handler"


# -- commands ----------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {text!r}")
    return value


def cmd_serve(args) -> int:
    from ..app.server import serve
    from ..functions.runtimes import RuntimeConfigError, parse_pairs

    try:
        pythons = parse_pairs(args.python, "--python")
        runtime_map = parse_pairs(args.runtime_map, "--runtime-map")
    except RuntimeConfigError as exc:
        raise UserError(str(exc)) from None
    config = ServerConfig(
        host=args.host,
        port=args.port,
        data_dir=str(_data_dir(args)),
        auth=not args.no_auth,
        concurrency_limit=args.concurrency_limit,
        idle_timeout_s=args.idle_timeout,
        retry_delay_s=args.retry_delay_s,
        memory_budget_mb=args.memory_budget_mb,
        tasks_max=args.tasks_max,
        freeze_idle_ms=args.freeze_idle_ms,
        spare_sandboxes=args.spare_sandboxes,
        zygote=not args.no_zygote,
        tls_port=args.tls_port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        sandbox=args.sandbox,
        billing_granularity_ms=args.billing_granularity_ms,
        log_retention_days=args.log_retention_days,
        log_max_mb=args.log_max_mb,
        usage_rollup_days=args.usage_rollup_days,
        max_connections=args.max_connections,
        unauthenticated_buffer_mb=args.unauthenticated_buffer_mb,
        head_timeout_s=args.head_timeout,
        body_timeout_s=args.body_timeout,
        pythons=pythons,
        runtime_map=runtime_map,
        s3_max_object_mb=args.s3_max_object_mb,
        s3_quota_mb=args.s3_quota_mb,
        s3_hosts=args.s3_host or [],
        console=args.console,
        export_otlp=args.export_otlp,
        export_syslog=args.export_syslog,
        export_buffer_calls=args.export_buffer_calls,
    )
    return serve(config)


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--env expects KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def cmd_deploy(args) -> int:
    client = _client(args)
    code = _package(args.source)
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
            _call(client.put_function_code_signing_config, FunctionName=args.name, **signing)
        conf = _call(client.update_function_code, FunctionName=args.name, ZipFile=code)
        if given:
            _call(client.get_waiter("function_updated_v2").wait, **wait)
            conf = _call(client.update_function_configuration, FunctionName=args.name, **given)
        verb = "updated"
    else:
        given.setdefault("Handler", _guess_handler(pathlib.Path(args.source)))
        given.setdefault("Runtime", f"python{sys.version_info[0]}.{sys.version_info[1]}")
        conf = _call(client.create_function, FunctionName=args.name, Role="arn:aws:iam::000000000000:role/lambdalet", Code={"ZipFile": code},
                     **given, **signing)
        verb = "created"
    _call(client.get_waiter("function_active_v2").wait, **wait)
    if exists:
        _call(client.get_waiter("function_updated_v2").wait, **wait)
    print(f"{verb} {conf['FunctionName']} ({conf['Runtime']}, {conf['Handler']}, {conf['MemorySize']} MB, {conf['Timeout']} s) sha256={conf['CodeSha256']}")
    return 0


def cmd_invoke(args) -> int:
    client = _client(args)
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
    resp = _call(client.invoke, **kwargs)
    body = resp["Payload"].read().decode(errors="replace")
    if args.tail and resp.get("LogResult"):
        sys.stderr.write(base64.b64decode(resp["LogResult"]).decode(errors="replace"))
    print(body)
    return 1 if resp.get("FunctionError") else 0


def cmd_ls(args) -> int:
    client = _client(args)
    paginator = client.get_paginator("list_functions")
    rows = []
    try:
        for page in _call(lambda: list(paginator.paginate())):
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
    client = _client(args)
    _call(client.delete_function, FunctionName=args.name)
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
        _call(_client(args).get_function_configuration, FunctionName=args.target)

    try:
        return main_bench(args.target, args.connections, args.duration, args.rate, args.json, payload, _endpoint(args), lambda: _credentials(args))
    except ValueError as exc:
        raise UserError(str(exc)) from None


def cmd_doctor(args) -> int:
    from .doctor import report

    print(report(_data_dir(args)))
    return 0


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 3600 seconds")
    return value


class _HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default, unless it has none worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "%(default)" in text or not action.option_strings or default is None or default is False or default == argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("lambdalet")
    except metadata.PackageNotFoundError:
        return "unknown"


def _common_options() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """--data-dir and --endpoint, accepted after a subcommand as well as
    before it. SUPPRESS: a subcommand that was not given one keeps the value
    given before it (or the top-level default)."""
    data = _Parser(add_help=False)
    data.add_argument("--data-dir", default=argparse.SUPPRESS, help="data directory (default: $LAMBDALET_DATA_DIR or ~/.local/share/lambdalet)")
    client = _Parser(add_help=False, parents=[data])
    client.add_argument("--endpoint", default=argparse.SUPPRESS, help="server URL (default: $LAMBDALET_ENDPOINT or http://127.0.0.1:9000)")
    return data, client


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lambdalet", description="A self-hosted AWS Lambda for Linux hosts.")
    parser.add_argument("--version", action="version", version=f"lambdalet {_version()}")
    parser.add_argument("--endpoint", help="server URL (default: $LAMBDALET_ENDPOINT or http://127.0.0.1:9000)")
    parser.add_argument("--data-dir", help="data directory (default: $LAMBDALET_DATA_DIR or ~/.local/share/lambdalet)")
    data_opt, client_opts = _common_options()
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the server in the foreground", parents=[data_opt])
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (a non-loopback address needs authentication on)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (0: any free port)")
    p.add_argument("--no-auth", action="store_true", help="accept unsigned requests (loopback binds only)")
    p.add_argument("--concurrency-limit", type=int, default=1000, help="account-wide concurrent executions")
    p.add_argument("--idle-timeout", type=float, default=300.0, help="seconds an idle warm instance is kept")
    p.add_argument("--retry-delay-s", type=_positive_seconds, default=60.0, help="async retry base delay: retries wait this, then twice this (60, as AWS)")
    p.add_argument("--tls-port", type=int, help="also serve the API over TLS and HTTP/2 (hypercorn) on this port")
    p.add_argument("--tls-cert", help="PEM certificate for --tls-port")
    p.add_argument("--tls-key", help="PEM private key for --tls-port")
    p.add_argument("--spare-sandboxes", type=int, default=2, help="sandboxes kept started ahead of cold starts while the server is in use (0: none)")
    p.add_argument("--no-zygote", action="store_true", help="start an interpreter in every sandbox instead of forking workers from one runtime zygote (slower, more memory; forks share ASLR layout and hash keys)")
    p.add_argument("--memory-budget-mb", type=int, default=None, help="MemorySize the pool may give instances in all (default: what the host has free, less 512 MB)")
    p.add_argument("--tasks-max", type=_positive_int, default=None, metavar="N", help="processes and threads all functions may have together, a pids limit on Lambdalet's cgroup (default: half the host's pid limit)")
    p.add_argument("--freeze-idle-ms", type=_non_negative_float, default=5.0, metavar="MS", help="freeze an instance once it has been idle this long, thaw it for its next call, as Lambda does (0: never freeze)")
    p.add_argument("--sandbox", choices=("auto", "namespaced", "process"), default="auto",
                   help="auto and namespaced: isolate every function, and refuse to start where no sandbox "
                        "can (the error says why); process: run functions as plain processes with this "
                        "server's privileges, not isolated at all")
    p.add_argument("--billing-granularity-ms", type=_positive_int, default=1, metavar="N", help="round billed duration up to N ms (1, as AWS today; 100, as AWS once did)")
    p.add_argument("--log-retention-days", type=int, default=0, metavar="D", help="delete function logs older than D days (0: keep forever)")
    p.add_argument("--log-max-mb", type=_non_negative_int, default=1024, metavar="MB", help="keep function logs within MB megabytes, deleting the oldest calls' first (0: no cap)")
    p.add_argument("--usage-rollup-days", type=_non_negative_int, default=7, metavar="D", help="fold usage rows of calls older than D days into per-hour sums (monthly bills unchanged; 0: keep a row per call)")
    p.add_argument("--max-connections", type=_positive_int, default=1024, metavar="N", help="open connections on both ports together; past it the server stops accepting (new clients wait in the listen backlog) after closing an idle keep-alive connection")
    p.add_argument("--unauthenticated-buffer-mb", type=_positive_int, default=128, metavar="MB", help="memory for request heads and bodies not yet authenticated, all connections together; past it requests get 429 before their body is read")
    p.add_argument("--head-timeout", type=_positive_seconds, default=30.0, metavar="S", help="a request head must arrive within S seconds of its first byte, and a body must make progress every S seconds")
    p.add_argument("--body-timeout", type=_positive_seconds, default=60.0, metavar="S", help="a request body must arrive in full within S seconds; raise it for large deploys over slow links")
    p.add_argument("--python", action="append", metavar="RUNTIME=PATH", help="run RUNTIME (e.g. python3.12) on this interpreter; repeatable (default: found on PATH, /usr/local/bin, /usr/bin and pyenv)")
    p.add_argument("--runtime-map", action="append", metavar="RUNTIME=RUNTIME", help="run functions of a Python version this host lacks on one it has, e.g. python3.14=python3.13 (declared in their logs and doctor); repeatable")
    p.add_argument("--s3-max-object-mb", type=_positive_int, default=5120, metavar="MB", help="the built-in S3 store's largest object, single PUT or multipart (a single PUT or part is also held in memory until verified, so it is capped by --unauthenticated-buffer-mb too)")
    p.add_argument("--s3-quota-mb", type=int, default=0, metavar="MB", help="bytes all objects in the built-in S3 store may take together (0: no quota); past it uploads get S3's EntityTooLarge")
    p.add_argument("--s3-host", action="append", metavar="NAME", help="a host name whose subdomains are buckets (virtual-hosted-style), besides localhost and s3.localhost; repeatable")
    p.add_argument("--console", choices=("auto", "on", "off"), default="auto",
                   help="the web console at /console: auto serves it on a loopback --host, and on any other only over TLS "
                        "(--tls-port); on serves it over plain HTTP too; off turns it off")
    p.add_argument("--export-otlp", metavar="URL", help="ship every call's log lines and REPORT metrics over OTLP/HTTP "
                   "(protobuf) to URL/v1/logs and URL/v1/metrics, e.g. http://127.0.0.1:4318 (an OpenTelemetry Collector)")
    p.add_argument("--export-syslog", metavar="[tcp://|udp://]HOST:PORT", help="ship every call's log lines and REPORT "
                   "figures as RFC 5424 syslog, over TCP with octet counting (the default) or UDP, e.g. 127.0.0.1:514 (rsyslog)")
    p.add_argument("--export-buffer-calls", type=_positive_int, default=10_000, metavar="N",
                   help="calls each export may hold while its receiver is slow or down; past it new calls are dropped "
                        "from the export (never delayed) and counted in /metrics (default 10000)")
    p.set_defaults(func=cmd_serve)

    from .usage_cli import add_parsers as add_usage_parsers

    add_usage_parsers(sub, UserError, _client, _endpoint, parents=[client_opts])

    from .url_cli import add_parsers as add_url_parsers

    add_url_parsers(sub, UserError, _client, _call, parents=[client_opts])

    from .signing_cli import add_parsers as add_signing_parsers

    add_signing_parsers(sub, parents=[client_opts])

    from .runtimes_cli import add_parsers as add_runtimes_parsers

    add_runtimes_parsers(sub, UserError)

    p = sub.add_parser("deploy", help="create a function, or update it if it exists", parents=[client_opts])
    p.add_argument("source", metavar="DIR|ZIP", help="a directory (zipped for you) or a .zip file")
    p.add_argument("--name", required=True, help="the function's name")
    p.add_argument("--handler", help="module.function (default when creating: guessed from lambda_function.py, app.py, handler.py or main.py; an update keeps the function's)")
    p.add_argument("--runtime", help="e.g. python3.11 (default when creating: this Python's version; an update keeps the function's)")
    p.add_argument("--memory", type=int, help="MemorySize in MB (default when creating: 128; an update keeps the function's)")
    p.add_argument("--timeout", type=int, help="Timeout in seconds (default when creating: 3; an update keeps the function's)")
    p.add_argument("--env", action="append", metavar="K=V", help="an environment variable; repeat for more (replaces all of them on an update)")
    p.add_argument("--code-signing-config", metavar="ARN",
                   help="the code signing config the function follows (lambdalet signing-config create); the package must pass it")
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
        hint = _refusal_hint(args, exc)
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
    # Run the package's own module, not this __main__ copy of it: the
    # subcommand modules import UserError from lambdalet.gateway.cli, and
    # main() must catch that class, not a twin.
    from lambdalet.gateway.cli.commands import main as _main

    sys.exit(_main())
