"""Server settings, and where the data directory lives by default."""

from __future__ import annotations

import os
import pathlib

import msgspec

DEFAULT_PORT = 9000
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "000000000000"


def default_data_dir() -> pathlib.Path:
    env = os.environ.get("LAMBDALET_DATA_DIR")
    if env:
        return pathlib.Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return pathlib.Path(base) / "lambdalet"


def default_cache_dir() -> pathlib.Path:
    """Where msgspec and cffi built for other Python versions are kept
    (`lambdalet runtimes install`): shared by every data directory."""
    env = os.environ.get("LAMBDALET_CACHE_DIR")
    if env:
        return pathlib.Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "lambdalet"


class ConfigError(Exception):
    """A setting the server refuses to start with."""


class ServerConfig(msgspec.Struct, kw_only=True):
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: str
    auth: bool = True
    region: str = DEFAULT_REGION
    account: str = DEFAULT_ACCOUNT
    concurrency_limit: int = 1000
    idle_timeout_s: float = 300.0
    retry_delay_s: float = 60.0  # async retries wait this, then twice this (AWS: 1 min, 2 min)
    spare_sandboxes: int = 2  # pre-started sandboxes for cold starts (only while in use)
    # Fork Python workers from one runtime zygote (False: an interpreter per
    # sandbox, for hosts whose tenants must not share ASLR layout or hash keys).
    zygote: bool = True
    memory_budget_mb: int | None = None  # None: MemAvailable at start, less a reserve
    tasks_max: int | None = None  # processes + threads of all sandboxes; None: half the host's
    freeze_idle_ms: float = 5.0  # freeze an instance idle this long; 0: never
    # auto | namespaced: isolate every function or refuse to start;
    # process: plain, unisolated processes, only when asked for.
    sandbox: str = "auto"
    # TLS + HTTP/2 through hypercorn, on a port of its own, when given a certificate.
    tls_port: int | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    billing_granularity_ms: int = 1  # 1 as AWS bills today, 100 as it once did
    log_retention_days: int = 0  # 0 keeps function logs forever
    log_max_mb: int = 1024  # logs.db's lines in use; the oldest calls' go first. 0: no cap
    usage_rollup_days: int = 7  # per-call usage rows older than this become per-hour sums; 0: never
    # HTTP limits on both ports (http/limits.py, HttpLimits, holds the reasons).
    max_connections: int = 1024
    unauthenticated_buffer_mb: int = 128
    head_timeout_s: float = 30.0
    body_timeout_s: float = 60.0
    # Interpreters named by the operator (--python python3.12=/path), and
    # runtimes run on another version (--runtime-map python3.14=python3.13).
    pythons: dict[str, str] = {}
    runtime_map: dict[str, str] = {}
    # The built-in S3-compatible object store: the largest object (a single
    # PUT or a completed multipart upload), the bytes all objects may take
    # (0: no quota), and extra host names for virtual-hosted-style buckets.
    s3_max_object_mb: int = 5120
    s3_quota_mb: int = 0
    s3_hosts: list[str] = []
    # The web console at /console (console/policy.py): auto serves it on a
    # loopback address, and elsewhere only over TLS; on and off force it.
    console: str = "auto"
    # The operator's export of every call's logs and REPORT figures
    # (metering/export): an OTLP/HTTP base URL, a syslog [tcp://|udp://]HOST:PORT,
    # and how many calls each destination may hold while its receiver lags.
    export_otlp: str | None = None
    export_otlp_headers: list[str] = []  # NAME=VALUE; none: OTEL_EXPORTER_OTLP_HEADERS
    export_syslog: str | None = None
    export_buffer_calls: int = 10_000
