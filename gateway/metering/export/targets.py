"""Where the operator's export goes: `serve --export-otlp URL` and
`serve --export-syslog [tcp://|udp://]HOST:PORT`, parsed and checked once,
at start-up, so that a typo is a clear error and not a silent loss."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

import msgspec

OTLP_SCHEMES = {"http": 80, "https": 443}
SYSLOG_TRANSPORTS = ("tcp", "udp")
# A DNS name, or an IP address (checked apart): letters, digits, hyphens, dots.
_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


class ExportConfigError(ValueError):
    """An --export-* value the server refuses to start with."""


class OtlpTarget(msgspec.Struct, frozen=True):
    """An OTLP/HTTP receiver: logs go to <base>/v1/logs and metrics to
    <base>/v1/metrics, as the OpenTelemetry SDKs do with
    OTEL_EXPORTER_OTLP_ENDPOINT."""

    scheme: str
    host: str
    port: int
    base_path: str  # "" or "/prefix", never ending in "/"
    # Sent with every request: a hosted backend's API key, a tenant.
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def logs_path(self) -> str:
        return f"{self.base_path}/v1/logs"

    @property
    def metrics_path(self) -> str:
        return f"{self.base_path}/v1/metrics"

    def url(self, path: str = "") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{path or self.base_path}"


class SyslogTarget(msgspec.Struct, frozen=True):
    transport: str  # tcp (octet-counted frames, RFC 6587) or udp (a datagram per message, RFC 5426)
    host: str
    port: int

    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}://{host}:{self.port}"


def parse_otlp(value: str, headers: list[str] | None = None, env_headers: str | None = None) -> OtlpTarget:
    """headers: `--export-otlp-header NAME=VALUE`s; without any, the
    OTEL_EXPORTER_OTLP_HEADERS value (`k1=v1,k2=v2`, values percent-encoded),
    as the OpenTelemetry SDKs read it."""
    option = "--export-otlp"
    parts = urllib.parse.urlsplit(value.strip())
    if parts.scheme not in OTLP_SCHEMES:
        raise ExportConfigError(
            f"{option} {value!r}: expected an http:// or https:// URL of an OTLP/HTTP receiver, e.g. http://127.0.0.1:4318"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ExportConfigError(f"{option} {value!r}: a query, a fragment or credentials in the URL are not supported")
    host = _host(option, value, parts.hostname)
    port = _port(option, value, _url_port(option, value, parts), default=OTLP_SCHEMES[parts.scheme])
    if headers:
        pairs = tuple(_header("--export-otlp-header", item) for item in headers)
    elif env_headers:
        pairs = tuple(
            _header("OTEL_EXPORTER_OTLP_HEADERS", urllib.parse.unquote(item.strip())) for item in env_headers.split(",") if item.strip()
        )
    else:
        pairs = ()
    return OtlpTarget(parts.scheme, host, port, parts.path.rstrip("/"), pairs)


# RFC 9110's token: what a header's name may be made of.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_RESERVED = {"host", "content-length", "content-type", "transfer-encoding", "connection"}


def _header(option: str, item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not _TOKEN.match(name):
        raise ExportConfigError(f"{option}: expected NAME=VALUE with a header name, got {item.split('=')[0]!r}")
    if name.lower() in _RESERVED:
        raise ExportConfigError(f"{option}: {name} is set by the export itself")
    if any(c in value for c in "\r\n\0"):
        raise ExportConfigError(f"{option}: the value of {name} holds a line break or a NUL")
    return name, value


def parse_syslog(value: str) -> SyslogTarget:
    option = "--export-syslog"
    text = value.strip()
    transport = "tcp"
    scheme, sep, rest = text.partition("://")
    if sep:
        if scheme not in SYSLOG_TRANSPORTS:
            raise ExportConfigError(f"{option} {value!r}: the transport is tcp:// or udp://, not {scheme}://")
        transport, text = scheme, rest
    if "/" in text:
        raise ExportConfigError(f"{option} {value!r}: expected HOST:PORT, optionally led by tcp:// or udp://")
    parts = urllib.parse.urlsplit(f"//{text}")
    if parts.username or parts.password:
        raise ExportConfigError(f"{option} {value!r}: expected HOST:PORT, optionally led by tcp:// or udp://")
    host = _host(option, value, parts.hostname)
    raw_port = _url_port(option, value, parts)
    if raw_port is None:
        raise ExportConfigError(f"{option} {value!r}: the port is missing (HOST:PORT, e.g. 127.0.0.1:514)")
    return SyslogTarget(transport, host, _port(option, value, raw_port))


def _url_port(option: str, value: str, parts: urllib.parse.SplitResult) -> int | None:
    try:
        return parts.port  # ValueError for a port that is not a number, or past 65535
    except ValueError:
        raise ExportConfigError(f"{option} {value!r}: the port must be a number from 1 to 65535") from None


def _port(option: str, value: str, port: int | None, default: int | None = None) -> int:
    if port is None and default is not None:
        return default
    if port is None or not 1 <= port <= 65535:
        raise ExportConfigError(f"{option} {value!r}: the port must be a number from 1 to 65535")
    return port


def _host(option: str, value: str, host: str | None) -> str:
    if not host:
        raise ExportConfigError(f"{option} {value!r}: the host is missing")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOST_NAME.match(host):
        raise ExportConfigError(f"{option} {value!r}: {host!r} is neither an IP address nor a host name")
    return host
