"""`lambdalet serve`: a Lambdalet (root.py) serving HTTP, its start-up
lines, run until SIGTERM or SIGINT, then every worker stopped."""

from __future__ import annotations

import gc
import os
import pathlib
import resource
import signal
import sys
from collections.abc import Sequence

import trio

from ..execution import runtime_setup
from .backend import choose_backend
from .config import ConfigError, ServerConfig
from .http_front import ServingHttp, check
from .root import Lambdalet

__all__ = ["ConfigError", "choose_backend", "run", "serve"]


def _banner(
    config: ServerConfig,
    data_dir: pathlib.Path,
    backend,
    warnings: list[str],
    serving: ServingHttp,
    runtimes: runtime_setup.ServerRuntimes | None = None,
    export_lines: Sequence[str] = (),
) -> str:
    host = config.host if ":" not in config.host else f"[{config.host}]"
    url = serving.base_url
    lines = [f"lambdalet serving the Lambda API on {url}"]
    if config.tls_port is not None:
        lines.append(f"  and over TLS + HTTP/2 on https://{host}:{config.tls_port}")
    lines += [f"  data dir: {data_dir}", f"  sandbox backend: {backend.name}"]
    protections = backend.protections()
    on = [k for k, v in protections.items() if v]
    off = [k for k, v in protections.items() if not v]
    lines.append(f"  protections on: {', '.join(on) or 'none'}")
    if protections.get("seccomp_allow_list"):
        from lambdalet.sandbox import seccomp

        lines.append(f"  {seccomp.summary()}")
    if off:
        lines.append(f"  WARNING protections OFF: {', '.join(off)}")
    for w in warnings:
        lines.append(f"  WARNING {w}")
    if runtimes is not None:
        lines.extend(f"  {line}" for line in runtime_setup.lines(runtimes, backend))
    if not config.auth:
        lines.append("  WARNING authentication is OFF (--no-auth)")
    lines.extend(f"  {line}" for line in serving.console_lines)
    lines.extend(f"  {line}" for line in export_lines)
    lines.append("Use it from boto3 or the aws CLI:")
    creds = data_dir / "credentials"
    lines.append(
        f"  export AWS_ENDPOINT_URL={url} AWS_SHARED_CREDENTIALS_FILE={creds} AWS_REGION={config.region} AWS_DEFAULT_REGION={config.region}"
    )
    return "\n".join(lines)


async def run(config: ServerConfig, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    check(config)  # refused before anything is created
    for pem in (config.tls_cert, config.tls_key):
        if pem is not None and not os.access(pem, os.R_OK):
            raise ConfigError(f"cannot read {pem}")
    async with Lambdalet(config=config) as lam, trio.open_nursery() as nursery:
        serving = await nursery.start(lam.serve_http)
        print(
            _banner(
                config,
                lam.data_dir,
                lam.backend,
                lam.warnings,
                serving,
                lam.runtimes,
                lam.exporter.describe() if lam.exporter is not None else [],
            ),
            flush=True,
        )
        # What start-up built lives as long as the server: keep the
        # collector's full passes from walking it again and again (one
        # such pass stalled every request for ~30 ms under load).
        gc.freeze()
        task_status.started(serving.port)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                print(f"lambdalet: {signal.Signals(signum).name} received, stopping", flush=True)
                nursery.cancel_scope.cancel()
                break


def _config_error(exc: BaseException) -> ConfigError | None:
    """The ConfigError in what start-up raised, also when a nursery
    wrapped it in an exception group."""
    if isinstance(exc, ConfigError):
        return exc
    inner: Sequence[BaseException] = getattr(exc, "exceptions", ())
    return _config_error(inner[0]) if len(inner) == 1 else None


def raise_open_files_limit() -> tuple[int, int]:
    """The server holds five descriptors per warm instance (its socket,
    pidfd, log, memory peak and, once frozen, its freeze switch) and one per
    connection: 1,000 functions need over 5,000, where many hosts start a
    process with a soft limit of 1,024. The soft limit goes up to the hard
    one, which any process may do; the operator's hard limit stays, and
    sandboxes get their own 1,024 (nsspawn's nofile) as before."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):
            return soft, hard  # refused (hard above nr_open): keep what we have
        soft = hard
    return soft, hard


def serve(config: ServerConfig) -> int:
    raise_open_files_limit()
    try:
        trio.run(run, config)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        error = _config_error(exc)
        if error is None:
            raise
        print(f"lambdalet: {error}", file=sys.stderr)
        return 2
    print("lambdalet: stopped", flush=True)
    return 0
