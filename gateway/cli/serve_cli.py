"""`lambdalet serve`: the server's options, and running it in the
foreground with them."""

from __future__ import annotations

import argparse

from ..app.config import DEFAULT_PORT, ServerConfig
from .arg_types import non_negative_float, non_negative_int, positive_int, positive_seconds
from .client import UserError, data_dir


def add_parser(sub, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the server in the foreground", parents=parents)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (a non-loopback address needs authentication on)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (0: any free port)")
    p.add_argument("--no-auth", action="store_true", help="accept unsigned requests (loopback binds only)")
    p.add_argument("--concurrency-limit", type=int, default=1000, help="account-wide concurrent executions")
    p.add_argument("--idle-timeout", type=float, default=300.0, help="seconds an idle warm instance is kept")
    p.add_argument(
        "--retry-delay-s",
        type=positive_seconds,
        default=60.0,
        help="async retry base delay: retries wait this, then twice this (60, as AWS)",
    )
    p.add_argument("--tls-port", type=int, help="also serve the API over TLS and HTTP/2 (hypercorn) on this port")
    p.add_argument("--tls-cert", help="PEM certificate for --tls-port")
    p.add_argument("--tls-key", help="PEM private key for --tls-port")
    p.add_argument(
        "--spare-sandboxes", type=int, default=2, help="sandboxes kept started ahead of cold starts while the server is in use (0: none)"
    )
    p.add_argument(
        "--no-zygote",
        action="store_true",
        help="start an interpreter in every sandbox instead of forking workers from one runtime zygote (slower, more memory; forks share ASLR layout and hash keys)",
    )
    p.add_argument(
        "--memory-budget-mb",
        type=int,
        default=None,
        help="MemorySize the pool may give instances in all (default: what the host has free, less 512 MB)",
    )
    p.add_argument(
        "--tasks-max",
        type=positive_int,
        default=None,
        metavar="N",
        help="processes and threads all functions may have together, a pids limit on Lambdalet's cgroup (default: half the host's pid limit)",
    )
    p.add_argument(
        "--freeze-idle-ms",
        type=non_negative_float,
        default=5.0,
        metavar="MS",
        help="freeze an instance once it has been idle this long, thaw it for its next call, as Lambda does (0: never freeze)",
    )
    p.add_argument(
        "--sandbox",
        choices=("auto", "namespaced", "process"),
        default="auto",
        help="auto and namespaced: isolate every function, and refuse to start where no sandbox "
        "can (the error says why); process: run functions as plain processes with this "
        "server's privileges, not isolated at all",
    )
    p.add_argument(
        "--billing-granularity-ms",
        type=positive_int,
        default=1,
        metavar="N",
        help="round billed duration up to N ms (1, as AWS today; 100, as AWS once did)",
    )
    p.add_argument(
        "--log-retention-days", type=int, default=0, metavar="D", help="delete function logs older than D days (0: keep forever)"
    )
    p.add_argument(
        "--log-max-mb",
        type=non_negative_int,
        default=1024,
        metavar="MB",
        help="keep function logs within MB megabytes, deleting the oldest calls' first (0: no cap)",
    )
    p.add_argument(
        "--usage-rollup-days",
        type=non_negative_int,
        default=7,
        metavar="D",
        help="fold usage rows of calls older than D days into per-hour sums (monthly bills unchanged; 0: keep a row per call)",
    )
    p.add_argument(
        "--max-connections",
        type=positive_int,
        default=1024,
        metavar="N",
        help="open connections on both ports together; past it the server stops accepting (new clients wait in the listen backlog) after closing an idle keep-alive connection",
    )
    p.add_argument(
        "--unauthenticated-buffer-mb",
        type=positive_int,
        default=128,
        metavar="MB",
        help="memory for request heads and bodies not yet authenticated, all connections together; past it requests get 429 before their body is read",
    )
    p.add_argument(
        "--head-timeout",
        type=positive_seconds,
        default=30.0,
        metavar="S",
        help="a request head must arrive within S seconds of its first byte, and a body must make progress every S seconds",
    )
    p.add_argument(
        "--body-timeout",
        type=positive_seconds,
        default=60.0,
        metavar="S",
        help="a request body must arrive in full within S seconds; raise it for large deploys over slow links",
    )
    p.add_argument(
        "--python",
        action="append",
        metavar="RUNTIME=PATH",
        help="run RUNTIME (e.g. python3.12) on this interpreter; repeatable (default: found on PATH, /usr/local/bin, /usr/bin and pyenv)",
    )
    p.add_argument(
        "--runtime-map",
        action="append",
        metavar="RUNTIME=RUNTIME",
        help="run functions of a Python version this host lacks on one it has, e.g. python3.14=python3.13 (declared in their logs and doctor); repeatable",
    )
    p.add_argument(
        "--s3-max-object-mb",
        type=positive_int,
        default=5120,
        metavar="MB",
        help="the built-in S3 store's largest object, single PUT or multipart (a single PUT or part is also held in memory until verified, so it is capped by --unauthenticated-buffer-mb too)",
    )
    p.add_argument(
        "--s3-quota-mb",
        type=int,
        default=0,
        metavar="MB",
        help="bytes all objects in the built-in S3 store may take together (0: no quota); past it uploads get S3's EntityTooLarge",
    )
    p.add_argument(
        "--s3-host",
        action="append",
        metavar="NAME",
        help="a host name whose subdomains are buckets (virtual-hosted-style), besides localhost and s3.localhost; repeatable",
    )
    p.add_argument(
        "--console",
        choices=("auto", "on", "off"),
        default="auto",
        help="the web console at /console: auto serves it on a loopback --host, and on any other only over TLS "
        "(--tls-port); on serves it over plain HTTP too; off turns it off",
    )
    p.add_argument(
        "--export-otlp",
        metavar="URL",
        help="ship every call's log lines and REPORT metrics over OTLP/HTTP "
        "(protobuf) to URL/v1/logs and URL/v1/metrics, e.g. http://127.0.0.1:4318 (an OpenTelemetry Collector)",
    )
    p.add_argument(
        "--export-otlp-header",
        action="append",
        metavar="NAME=VALUE",
        help="a header sent with every OTLP "
        "request, e.g. a backend's API key; repeatable (default: $OTEL_EXPORTER_OTLP_HEADERS, k1=v1,k2=v2)",
    )
    p.add_argument(
        "--export-syslog",
        metavar="[tcp://|udp://]HOST:PORT",
        help="ship every call's log lines and REPORT "
        "figures as RFC 5424 syslog, over TCP with octet counting (the default) or UDP, e.g. 127.0.0.1:514 (rsyslog)",
    )
    p.add_argument(
        "--export-buffer-calls",
        type=positive_int,
        default=10_000,
        metavar="N",
        help="calls each export may hold while its receiver is slow or down; past it new calls are dropped "
        "from the export (never delayed) and counted in /metrics (default 10000)",
    )
    p.set_defaults(func=cmd_serve)


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
        data_dir=str(data_dir(args)),
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
        export_otlp_headers=args.export_otlp_header or [],
        export_syslog=args.export_syslog,
        export_buffer_calls=args.export_buffer_calls,
    )
    return serve(config)
