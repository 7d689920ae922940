"""Real receivers for the export tests: Debian's rsyslogd on loopback
ports, and an OTLP/HTTP receiver that decodes with opentelemetry-proto's
generated classes."""

from __future__ import annotations

import http.server
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import threading

import pytest
from helpers import free_port, wait_for
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

RSYSLOGD = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None)
# One line per message, every RFC 5424 field apart; control characters kept
# as they came (rsyslog would write a tab as #011).
FIELDS = ("pri", "timestamp", "hostname", "app-name", "procid", "msgid", "structured-data", "msg")
SEP = "\x1f"


class Rsyslog:
    """rsyslogd -n with a minimal configuration in a temporary directory,
    listening on a loopback TCP port and a UDP port, writing every message
    it parses to messages.log. Stopped by its PID."""

    def __init__(self, directory: pathlib.Path) -> None:
        if RSYSLOGD is None:
            pytest.fail("rsyslogd is not installed: `apt-get install rsyslog` (.ci/run installs it)")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tcp_port = free_port()
        self.udp_port = _free_udp_port()
        self.out = self.dir / "messages.log"
        self.pidfile = self.dir / "rsyslogd.pid"
        template = SEP.join(f"%{f}:::date-rfc3339%" if f == "timestamp" else f"%{f}%" for f in FIELDS)
        (self.dir / "rsyslog.conf").write_text(
            f'global(workDirectory="{self.dir}" maxMessageSize="64k" parser.escapeControlCharactersOnReceive="off")\n'
            'module(load="imtcp")\nmodule(load="imudp")\n'
            f'input(type="imtcp" address="127.0.0.1" port="{self.tcp_port}")\n'
            f'input(type="imudp" address="127.0.0.1" port="{self.udp_port}")\n'
            f'template(name="fields" type="string" string="{template}\\n")\n'
            f'action(type="omfile" file="{self.out}" template="fields")\n'
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> Rsyslog:
        with open(self.dir / "rsyslogd.err", "wb") as err:
            self.proc = subprocess.Popen(
                [RSYSLOGD, "-n", "-f", str(self.dir / "rsyslog.conf"), "-i", str(self.pidfile)], stdout=subprocess.DEVNULL, stderr=err
            )
        # Ready once its pidfile names it and its TCP input accepts.
        wait_for(lambda: self.pidfile.exists() and self.pidfile.read_text().strip() == str(self.proc.pid), timeout=15)
        wait_for(self._accepts, timeout=15)
        return self

    def _accepts(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"rsyslogd exited: {(self.dir / 'rsyslogd.err').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", self.tcp_port), timeout=1).close()
            return True
        except OSError:
            return False

    def messages(self) -> list[dict[str, str]]:
        if not self.out.exists():
            return []
        out = []
        for line in self.out.read_text(encoding="utf-8", errors="replace").splitlines():
            values = line.split(SEP)
            if len(values) == len(FIELDS):
                out.append(dict(zip(FIELDS, values)))
        return out

    def stop(self) -> None:
        if self.proc is None:
            return
        pid = int(self.pidfile.read_text()) if self.pidfile.exists() else self.proc.pid
        assert pid == self.proc.pid
        os.kill(pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OtlpReceiver:
    """OTLP/HTTP on loopback: every POST to /v1/logs or /v1/metrics is
    decoded with the official protobuf classes and kept. `answers` holds
    statuses to give before 200s (e.g. [503, 503] or [400])."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.logs: list[ExportLogsServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.answers: list[int] = []
        self.content_types: set[str] = set()
        self.headers: list[dict[str, str]] = []  # of every request, lower-case names
        self.lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpReceiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                    if status == 200:
                        receiver.content_types.add(self.headers["Content-Type"])
                        if self.path == "/v1/logs":
                            receiver.logs.append(ExportLogsServiceRequest.FromString(body))
                        elif self.path == "/v1/metrics":
                            receiver.metrics.append(ExportMetricsServiceRequest.FromString(body))
                        else:
                            status = 404
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None

    def log_records(self) -> list[tuple[dict, object]]:
        """(resource attributes, LogRecord) of every record received, in order."""
        with self.lock:
            out = []
            for request in self.logs:
                for rl in request.resource_logs:
                    attrs = attributes(rl.resource.attributes)
                    for sl in rl.scope_logs:
                        out.extend((attrs, record) for record in sl.log_records)
            return out

    def metric_points(self, name: str) -> list[tuple[dict, object, object]]:
        """(resource attributes, Metric, data point) of every point of `name`."""
        with self.lock:
            out = []
            for request in self.metrics:
                for rm in request.resource_metrics:
                    attrs = attributes(rm.resource.attributes)
                    for sm in rm.scope_metrics:
                        for metric in sm.metrics:
                            if metric.name == name:
                                kind = metric.WhichOneof("data")
                                out.extend((attrs, metric, p) for p in getattr(metric, kind).data_points)
            return out


def attributes(kvs) -> dict:
    out = {}
    for kv in kvs:
        kind = kv.value.WhichOneof("value")
        value = getattr(kv.value, kind)
        if kind == "array_value":
            value = [getattr(v, v.WhichOneof("value")) for v in value.values]
        out[kv.key] = value
    return out
