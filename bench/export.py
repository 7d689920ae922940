"""(o) What the built-in OTLP export costs warm throughput: req/s at c=16
and p50 at c=1 through a function URL, with `serve --export-otlp` to a
receiver on loopback and without, in alternating rounds on one machine
(target: the export costs <= 5% of req/s at c=16). Beside req/s, the
server's own CPU time per call over the c=16 run (from /proc, the export's
last batch included), which a machine shared with other work disturbs less
than req/s.

The receiver runs in a process of its own and decodes every request with
opentelemetry-proto's classes, as a collector would; it counts the log
records and invocations it got, so the row also shows that the export
kept up (calls exported / calls made, and the calls /metrics says were
dropped).

`python -m bench.export` prints the figures; run() returns them.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

from .harness import PY, Lambdalet, cpu_seconds, free_port, http_get_once, load, median

EXPORT_SETTLE_S = 2.0
SOURCE = "def handler(event, context):\n    print('handled', event.get('rawPath'))\n    return {'statusCode': 200, 'body': 'hello'}\n"


def receiver_main(port: int) -> None:
    """An OTLP/HTTP receiver: decodes each request, answers 200, and tells
    its counts at GET /counts."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    counts = {"log_records": 0, "invocations": 0, "requests": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            counts["requests"] += 1
            if self.path == "/v1/logs":
                request = ExportLogsServiceRequest.FromString(body)
                counts["log_records"] += sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
            elif self.path == "/v1/metrics":
                request = ExportMetricsServiceRequest.FromString(body)
                counts["invocations"] += sum(
                    p.as_int
                    for rm in request.resource_metrics
                    for sm in rm.scope_metrics
                    for m in sm.metrics
                    if m.name == "faas.invocations"
                    for p in m.sum.data_points
                )
            self._answer(b"")

        def do_GET(self):
            self._answer(json.dumps(counts).encode())

        def _answer(self, body: bytes) -> None:
            try:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # a server stopped between its request and our answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([PY, "-m", "bench.export", "receiver", str(self.port)], stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.counts()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("the OTLP receiver did not start") from None
                time.sleep(0.05)

    def counts(self) -> dict:
        with urllib.request.urlopen(self.url + "/counts", timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _server_counts(lam: Lambdalet) -> tuple[int, int]:
    """(calls the server finished, calls its export dropped), from /metrics."""
    with urllib.request.urlopen(lam.url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()

    def total(name: str) -> int:
        return int(sum(float(v) for v in re.findall(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.M)))

    return total("lambdalet_invocations_total"), total("lambdalet_export_dropped_calls_total")


def _worker_pid(server_pid: int) -> int | None:
    """The export worker among the server's children (any of its threads
    may have started it: trio starts processes from a thread)."""
    for task in os.listdir(f"/proc/{server_pid}/task"):
        try:
            with open(f"/proc/{server_pid}/task/{task}/children") as f:
                children = f.read().split()
        except OSError:
            continue
        for child in children:
            try:
                with open(f"/proc/{child}/cmdline", "rb") as f:
                    if f.read().endswith(b"-m\0lambdalet.gateway.metering.export\0"):
                        return int(child)
            except OSError:
                pass
    return None


def _wait_idle(pid: int, timeout_s: float = 30.0) -> None:
    """Until the process has used no CPU for half a second."""
    deadline = time.monotonic() + timeout_s
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        if now == last:
            return
        last = now


def _typical_calls(n: int) -> list:
    """n warm calls as the accounting hook hands them over: a usage row and
    a log of START, one printed line, END and REPORT."""
    import uuid

    from lambdalet.gateway.metering import log_lines
    from lambdalet.gateway.metering.ledger import UsageRecord
    from lambdalet.gateway.metering.log_records import CallLog

    out = []
    now = time.time_ns()
    for _ in range(n):
        rid = str(uuid.uuid4())
        usage = UsageRecord(
            request_id=rid,
            function="hello",
            version="$LATEST",
            architecture="x86_64",
            started_ns=now,
            duration_ns=400_000,
            init_ns=0,
            billed_ms=1,
            granularity_ms=1,
            memory_mb=1024,
            max_memory_mb=40,
            cold=False,
            outcome="success",
        )
        frame = log_lines.call_frame(rid, "$LATEST", duration_ns=400_000, memory_mb=1024, max_memory_mb=40, init_ns=None)
        assert frame is not None
        head = frame.head()
        log = head + b"handled /\n" + frame.tail()
        out.append(
            (
                usage,
                CallLog(
                    log_group="/aws/lambda/hello",
                    log_stream="2026/12/05/[$LATEST]" + "0" * 32,
                    request_id=rid,
                    started_ns=now,
                    ended_ns=now + 400_000,
                    log=log,
                    marks=[(len(head), now // 1_000_000)],
                    frame=frame,
                ),
            )
        )
    return out


def per_call_cpu_us(batch_calls: int = 512) -> dict:
    """CPU per call, from thread_time (the least disturbed of 20 runs): what
    the server's event loop does for each call (the hook's append and the
    batch's msgpack frame), and what the worker does (OTLP or RFC 5424)."""
    from lambdalet.gateway.metering.export.channel import Channel
    from lambdalet.gateway.metering.export.otlp_encode import Encoder
    from lambdalet.gateway.metering.export.process_sink import ProcessSink
    from lambdalet.gateway.metering.export.sinks import OtlpSink, SyslogSink
    from lambdalet.gateway.metering.export.targets import parse_otlp, parse_syslog
    from lambdalet.gateway.metering.export.worker import SinkSpec

    batch = _typical_calls(batch_calls)
    otlp = parse_otlp("http://127.0.0.1:4318")
    process = ProcessSink(SinkSpec(otlp=otlp))
    channel = Channel(process, max_calls=1 << 30, max_bytes=1 << 40)
    encoder = Encoder(region="us-east-1", account="000000000000", host_name="bench")

    def best(fn) -> float:
        fastest = float("inf")
        for _ in range(20):
            t0 = time.thread_time_ns()
            fn()
            fastest = min(fastest, time.thread_time_ns() - t0)
        return fastest / len(batch) / 1000

    def offer_all() -> None:
        for usage, log in batch:
            channel.offer(usage, log)
        channel._buffer.clear()
        channel._bytes = 0

    return {
        "server_hook_us": best(offer_all),
        "server_frame_us": best(lambda: process.encode(batch, 0)),
        "worker_otlp_us": best(lambda: OtlpSink(otlp, encoder).encode(batch, time.time_ns())),
        "worker_syslog_us": best(lambda: SyslogSink(parse_syslog("127.0.0.1:514"), "bench").encode(batch, 0)),
    }


def run(quick: bool = False) -> dict:
    cost = per_call_cpu_us()
    seconds = 3 if quick else 5
    rounds = 2 if quick else 3
    receiver = Receiver()
    try:
        modes = {"no export": (), "otlp export": ("--export-otlp", receiver.url)}
        figures: dict[str, dict[str, list[float]]] = {mode: {"c16_rps": [], "c1_p50_ms": [], "gateway_cpu_us": []} for mode in modes}
        exported: dict[str, int] = {"calls_made": 0, "calls_exported": 0, "calls_dropped": 0}
        for _ in range(rounds):
            for mode, args in modes.items():
                before = receiver.counts()["invocations"]
                lam = Lambdalet(*args)
                try:
                    url = lam.function("hello", SOURCE)
                    http_get_once(url)
                    load(url, 16, 1)  # warm every instance the run will use
                    time.sleep(EXPORT_SETTLE_S)
                    worker = _worker_pid(lam.proc.pid)  # started with the server, when exporting
                    if worker is not None:
                        _wait_idle(worker)  # its start (imports) is not the calls' cost
                    cpu0, (made0, _) = cpu_seconds(lam.proc.pid), _server_counts(lam)
                    worker0 = cpu_seconds(worker) if worker is not None else 0.0
                    c16 = load(url, 16, seconds)
                    # The export's last batch is encoded and sent up to a
                    # second after the last call: its CPU belongs to the calls.
                    time.sleep(EXPORT_SETTLE_S)
                    cpu1, (made1, _) = cpu_seconds(lam.proc.pid), _server_counts(lam)
                    if worker is not None:
                        figures[mode].setdefault("worker_cpu_us", []).append((cpu_seconds(worker) - worker0) / max(1, made1 - made0) * 1e6)
                    c1 = load(url, 1, seconds)
                    figures[mode]["c16_rps"].append(c16["rps"])
                    figures[mode]["c1_p50_ms"].append(c1["p50_ms"])
                    figures[mode]["gateway_cpu_us"].append((cpu1 - cpu0) / max(1, made1 - made0) * 1e6)
                    if args:
                        made, dropped = _server_counts(lam)
                        deadline = time.monotonic() + 15
                        while receiver.counts()["invocations"] - before < made - dropped and time.monotonic() < deadline:
                            time.sleep(0.2)
                        exported["calls_made"] += made
                        exported["calls_exported"] += receiver.counts()["invocations"] - before
                        exported["calls_dropped"] += dropped
                finally:
                    lam.stop()
        out: dict = {mode: {key: median(values) for key, values in fig.items()} for mode, fig in figures.items()}
        out["rounds"] = rounds
        out["seconds"] = seconds
        out.update(exported)
        out["ratio_c16_rps"] = out["otlp export"]["c16_rps"] / out["no export"]["c16_rps"]
        out["ratio_gateway_cpu"] = out["otlp export"]["gateway_cpu_us"] / out["no export"]["gateway_cpu_us"]
        out["per_call_cpu_us"] = cost
        return out
    finally:
        receiver.stop()


def render(results: dict) -> list[str]:
    if "no export" not in results:
        return []
    on, off = results["otlp export"], results["no export"]
    rows = [
        f"| warm URL req/s, c=16, OTLP export on (vs off; target ≥ 0.95×) | {on['c16_rps']:.0f} | {off['c16_rps']:.0f} | {on['c16_rps'] / off['c16_rps']:.2f}× |",
        f"| gateway CPU µs per warm call, c=16, OTLP export on (vs off) | {on['gateway_cpu_us']:.1f} | {off['gateway_cpu_us']:.1f} | {on['gateway_cpu_us'] / off['gateway_cpu_us']:.2f}× |",
        *(
            [f"| export worker CPU µs per warm call, c=16 (its own process) | {on['worker_cpu_us']:.1f} | | |"]
            if "worker_cpu_us" in on
            else []
        ),
        f"| warm URL p50 ms, c=1, OTLP export on (vs off) | {on['c1_p50_ms']:.3f} | {off['c1_p50_ms']:.3f} | {on['c1_p50_ms'] / off['c1_p50_ms']:.2f}× |",
    ]
    cost = results.get("per_call_cpu_us")
    if cost:
        rows.append(
            f"| export CPU µs per call on the server's event loop (hook + batch frame) | "
            f"{cost['server_hook_us'] + cost['server_frame_us']:.2f} | | |"
        )
        rows.append(
            f"| export CPU µs per call in the worker: OTLP / syslog encoding | "
            f"{cost['worker_otlp_us']:.2f} / {cost['worker_syslog_us']:.2f} | | |"
        )
    if results.get("calls_made"):
        rows.append(
            f"| calls exported over OTLP / made (dropped) | {results['calls_exported']} / {results['calls_made']} "
            f"({results['calls_dropped']}) | | |"
        )
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["receiver"]:
        receiver_main(int(sys.argv[2]))
    else:
        print(json.dumps(run("--quick" in sys.argv), indent=2))
