"""`lambdalet bench`: a closed- or open-loop HTTP load generator on trio.

Closed loop (default): each of N connections sends its next request as soon
as the previous answer arrives. Open loop (--rate R): requests are due on a
fixed schedule and latency is measured from when each was *due*, not when it
was sent, so a stalled server cannot hide its stall by slowing the client
(coordinated omission).
"""

from __future__ import annotations

import json
import math
import sys
import time
import urllib.parse
from array import array
from collections.abc import Callable

import trio

RequestFactory = Callable[[], bytes]


class ResponseReader:
    """Minimal client-side HTTP/1.1 response framing (Content-Length or chunked)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.error_type = ""  # the last response's x-amzn-ErrorType: a platform error

    def feed(self, data: bytes) -> None:
        self.buf += data

    def next_response(self) -> tuple[int, bytes] | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buf[:end]).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        length = None
        chunked = False
        self.error_type = ""
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "x-amzn-errortype":
                self.error_type = value.strip()
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        start = end + 4
        if chunked:
            pos = start
            body = bytearray()
            while True:
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    return None
                size = int(bytes(buf[pos:nl]).split(b";")[0], 16)
                if len(buf) < nl + 2 + size + 2:
                    return None
                body += buf[nl + 2 : nl + 2 + size]
                pos = nl + 2 + size + 2
                if size == 0:
                    del buf[:pos]
                    return status, bytes(body)
        length = length or 0
        if len(buf) < start + length:
            return None
        whole = bytes(buf[start : start + length])
        del buf[: start + length]
        return status, whole


class Results:
    def __init__(self) -> None:
        self.latencies = array("d")  # seconds
        self.errors = 0
        self.statuses: dict[int, int] = {}
        self.started = 0.0
        self.finished = 0.0
        self.fatal = ""  # why the run stopped early (nothing listens, nothing to call)
        self.stop: Callable[[], None] = lambda: None

    def summary(self) -> dict:
        lat = sorted(self.latencies)
        n = len(lat)
        elapsed = max(self.finished - self.started, 1e-9)

        def pct(p: float) -> float:
            if not n:
                return 0.0
            return lat[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))] * 1000

        ok = sum(c for s, c in self.statuses.items() if s < 400)
        return {
            "requests": n,
            "ok": ok,
            "errors": self.errors + (n - ok),
            "seconds": round(elapsed, 3),
            "rps": round(n / elapsed, 1),
            "latency_ms": {
                "p50": round(pct(50), 3),
                "p90": round(pct(90), 3),
                "p99": round(pct(99), 3),
                "p99.9": round(pct(99.9), 3),
                "max": round(lat[-1] * 1000, 3) if n else 0.0,
            },
            "status": {str(k): v for k, v in sorted(self.statuses.items())},
        }


async def read_response(sock: trio.socket.SocketType, reader: ResponseReader) -> tuple[int, bytes]:
    """The next whole response on sock, reading as much as it takes."""
    response = None
    while response is None:
        data = await sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        reader.feed(data)
        response = reader.next_response()
    return response


async def _connection(
    host: str, port: int, make_request: RequestFactory, results: Results, deadline: float, due: trio.MemoryReceiveChannel | None
) -> None:
    sock = None
    reader = ResponseReader()
    try:
        while trio.current_time() < deadline:
            if due is not None:
                try:
                    with trio.move_on_at(deadline):
                        intended = await due.receive()
                except trio.EndOfChannel:
                    return
                if trio.current_time() >= deadline:
                    return
            try:
                if sock is None:
                    sock = trio.socket.socket()
                    await sock.connect((host, port))
                    sock.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, 1)
                    reader = ResponseReader()
                sent_at = trio.current_time()
                await sock.send(make_request())
                response = await read_response(sock, reader)
                done = trio.current_time()
                start = intended if due is not None else sent_at
                results.latencies.append(done - start)
                status = response[0]
                results.statuses[status] = results.statuses.get(status, 0) + 1
                if status in (403, 404) and reader.error_type:
                    # The platform refused (no such function, a signature or
                    # keys it does not accept): every request would get the
                    # same. A function's own 404 carries no error type.
                    results.fatal = f"{reader.error_type}: {response[1][:300].decode(errors='replace')}"
                    results.stop()
                    return
            except ConnectionRefusedError as exc:
                # Nothing listens any more: every later request would fail the
                # same way, so the run ends now with the reason.
                results.fatal = f"the server at {host}:{port} refused the connection ({exc.strerror}); is it running?"
                results.stop()
                return
            except (OSError, ConnectionError, ValueError):
                results.errors += 1
                if sock is not None:
                    sock.close()
                sock = None
                await trio.sleep(0.01)
    finally:
        # Also when the run is cut short (cancelled) mid-request.
        if sock is not None:
            sock.close()


async def _pacer(rate: float, send: trio.MemorySendChannel, deadline: float) -> None:
    interval = 1.0 / rate
    next_due = trio.current_time()
    async with send:
        while next_due < deadline:
            await trio.sleep_until(next_due)
            try:
                send.send_nowait(next_due)
            except trio.WouldBlock:
                # Every connection is busy: the request is still due now and
                # its latency will count from now, when it should have gone.
                await send.send(next_due)
            next_due += interval


async def _progress(results: Results, deadline: float, out) -> None:
    last_n = 0
    while trio.current_time() < deadline:
        await trio.sleep(1.0)
        n = len(results.latencies)
        elapsed = trio.current_time() - results.started
        out.write(f"\r  {elapsed:5.1f}s  {n:8d} requests  {n - last_n:7d}/s  {results.errors} errors   ")
        out.flush()
        last_n = n
    out.write("\n")


async def run_load(
    url: str, make_request: RequestFactory, connections: int, duration: float, rate: float | None = None, progress=None
) -> Results:
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    results = Results()
    results.started = trio.current_time()
    deadline = results.started + duration
    async with trio.open_nursery() as nursery:
        results.stop = nursery.cancel_scope.cancel
        due_recv = None
        if rate:
            send, due_recv = trio.open_memory_channel(math.inf)
            nursery.start_soon(_pacer, rate, send, deadline)
        if progress is not None:
            nursery.start_soon(_progress, results, deadline, progress)
        async with trio.open_nursery() as workers:
            for _ in range(connections):
                workers.start_soon(_connection, host, port, make_request, results, deadline, due_recv.clone() if due_recv else None)
        nursery.cancel_scope.cancel()
    results.finished = trio.current_time()
    return results


def plain_request(url: str, method: str = "GET", body: bytes = b"", headers: dict[str, str] | None = None) -> RequestFactory:
    parts = urllib.parse.urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    return lambda: raw


def signed_invoke_request(endpoint: str, function: str, payload: bytes, key: str, secret: str, region: str = "us-east-1") -> RequestFactory:
    """Invoke requests signed with SigV4, with the head boto3 sends: its
    User-Agent and, added after signing, a fresh amz-sdk-invocation-id per
    call and amz-sdk-request. The signature is reused for a minute (well
    inside the 5-minute window) so signing does not dominate the client."""
    import uuid

    import botocore
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{endpoint.rstrip('/')}/2015-03-31/functions/{urllib.parse.quote(function, safe='')}/invocations"
    agent = (
        f"Boto3/{botocore.__version__} md/Botocore#{botocore.__version__} ua/2.1 os/linux md/arch#x86_64 "
        f"lang/python#{sys.version_info[0]}.{sys.version_info[1]}.{sys.version_info[2]} md/pyimpl#CPython "
        f"cfg/retry-mode#standard Botocore/{botocore.__version__}"
    )
    cache: list = [0.0, b"", b""]

    def make() -> bytes:
        now = time.monotonic()
        if now - cache[0] > 60:
            req = AWSRequest(method="POST", url=url, data=payload, headers={"User-Agent": agent})
            SigV4Auth(Credentials(key, secret), "lambda", region).add_auth(req)
            prepared = req.prepare()
            cache[0] = now
            # plain_request writes Content-Length itself: one, as boto3 sends.
            signed = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
            signed["amz-sdk-invocation-id"] = "\0"
            signed["amz-sdk-request"] = "attempt=1; max=3"
            cache[1], _, cache[2] = plain_request(url, "POST", payload, signed)().partition(b"\0")
        return cache[1] + str(uuid.uuid4()).encode() + cache[2]

    return make


def format_summary(target: str, s: dict) -> str:
    lat = s["latency_ms"]
    return "\n".join(
        [
            f"target: {target}",
            f"requests: {s['requests']} in {s['seconds']} s  ({s['rps']} req/s), errors: {s['errors']}",
            f"latency (ms):  p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  p99.9 {lat['p99.9']}  max {lat['max']}",
            f"status codes: {json.dumps(s['status'])}",
        ]
    )


def main_bench(
    target: str,
    connections: int,
    duration: float,
    rate: float | None,
    as_json: bool,
    payload: bytes,
    endpoint: str,
    credentials: Callable[[], tuple[str, str]],
) -> int:
    if target.startswith(("http://", "https://")):
        if target.startswith("https://"):
            raise ValueError("https targets are not supported; use the server's http port")
        make = plain_request(target, "POST" if payload else "GET", payload)
        url = target
    else:
        key, secret = credentials()
        make = signed_invoke_request(endpoint, target, payload, key, secret)
        url = endpoint
    results = trio.run(run_load, url, make, connections, duration, rate, None if as_json else sys.stderr)
    if results.fatal:
        raise ValueError(results.fatal)
    summary = results.summary()
    summary.update(target=target, connections=connections, rate=rate)
    print(json.dumps(summary) if as_json else format_summary(target, summary))
    return 0 if summary["errors"] == 0 else 1
