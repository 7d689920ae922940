"""A hostile client against a real `lambdalet serve`, with raw sockets.

Issue 10, hostile 5: unsigned bodies buffered whole before the 403,
trickled bodies held open, slow heads, idle keep-alive connections, more
connections than the server should hold, pipelining. Each test drives one
attack and asserts what the server answered (or that it closed) and that
its memory stayed bounded (VmHWM from /proc, the peak since it started).
Nothing here times the server; the attacks' own pacing uses socket timeouts.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import shutil
import socket
import ssl
import struct
import sys
import termios
import threading
import time

import boto3
import botocore.config
import pytest
from helpers import ServerProcess, allow_public_url, free_port, make_test_cert, make_zip, wait_for

MB = 1000 * 1000
ROLE = "arn:aws:iam::123456789012:role/hostile"
BUDGET_MB = 16
HEAD_TIMEOUT = 3
BODY_TIMEOUT = 5
MAX_CONNECTIONS = 64


def memory_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


def read_reply(sock: socket.socket, timeout: float = 60.0) -> Reply:
    """One response; fails if the connection closes or stays silent."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before a response: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return Reply(status, headers, rest[:length])


def read_until_closed(sock: socket.socket, timeout: float = 60.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def plausible_auth(key: str) -> str:
    """Header lines that pass every check a head allows (a real key id, a
    current date, the right scope) with a signature that is wrong."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return (
        f"Authorization: AWS4-HMAC-SHA256 Credential={key}/{stamp[:8]}/us-east-1/lambda/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={'0' * 64}\r\nX-Amz-Date: {stamp}\r\n"
    )


def send_quietly(sock: socket.socket, data: bytes, chunk: int = 1 << 20) -> None:
    """Uploads as an attacker would, not caring when the server hangs up."""
    view = memoryview(data)
    try:
        for i in range(0, len(view), chunk):
            sock.sendall(view[i : i + chunk])
    except OSError:
        pass


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    srv = ServerProcess(
        tmp_path_factory.mktemp("hostile"),
        "--unauthenticated-buffer-mb",
        str(BUDGET_MB),
        "--head-timeout",
        str(HEAD_TIMEOUT),
        "--body-timeout",
        str(BODY_TIMEOUT),
        "--max-connections",
        str(MAX_CONNECTIONS),
    ).start()
    lam = srv.client()
    code = {"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return {'statusCode': 200, 'body': 'ok'}\n"})}
    urls = {}
    for auth in ("NONE", "AWS_IAM"):
        name = f"url-{auth.lower().replace('_', '-')}"
        lam.create_function(
            FunctionName=name, Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}", Role=ROLE, Handler="app.handler", Code=code
        )
        urls[auth] = "/" + lam.create_function_url_config(FunctionName=name, AuthType=auth)["FunctionUrl"].split("/", 3)[3]
        if auth == "NONE":
            allow_public_url(lam, name)
    lam.create_function(
        FunctionName="big-answer",
        Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
        Role=ROLE,
        Handler="app.handler",
        MemorySize=256,
        Code={
            "ZipFile": make_zip({"app.py": "BODY = 'x' * 5_000_000\ndef handler(e, c):\n    return {'statusCode': 200, 'body': BODY}\n"})
        },
    )
    urls["big"] = "/" + lam.create_function_url_config(FunctionName="big-answer", AuthType="NONE")["FunctionUrl"].split("/", 3)[3]
    allow_public_url(lam, "big-answer")
    srv.urls = urls
    yield srv
    assert srv.stop() == 0, "".join(srv.output)


def connect(srv: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=60)


def test_unsigned_80mb_bodies_are_refused_before_they_are_read(hostile):
    """The issue's attack: three unsigned 80 MB bodies at once were each
    buffered whole before the 403."""
    pid = hostile.proc.pid
    before = memory_kb(pid, "VmHWM")
    socks = [connect(hostile) for _ in range(3)]
    body = bytes(80 * MB)
    senders = []
    for s in socks:
        s.sendall(f"POST /2015-03-31/functions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        t = threading.Thread(target=send_quietly, args=(s, body))
        t.start()
        senders.append(t)
    replies = [read_reply(s) for s in socks]
    for t in senders:
        t.join(timeout=120)
    for s in socks:
        s.close()
    for r in replies:
        assert r.status == 403
        assert r.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
        assert r.json() == {"message": "Missing Authentication Token"}
        assert r.headers["connection"] == "close"
    grown_mb = (memory_kb(pid, "VmHWM") - before) / 1024
    assert grown_mb < 24, f"server peak memory grew {grown_mb:.0f} MB for bodies it refused"


@pytest.mark.parametrize(
    "auth, code",
    [
        ("Authorization: Bearer x\r\n", "IncompleteSignatureException"),
        ("plausible-unknown-key", "UnrecognizedClientException"),
        ("plausible-wrong-region", "InvalidSignatureException"),
        ("plausible-expired", "InvalidSignatureException"),
    ],
)
def test_what_the_head_shows_is_checked_before_the_body(hostile, auth, code):
    key, _ = hostile.credentials()
    if auth == "plausible-unknown-key":
        auth = plausible_auth("LLAKNOSUCHKEY0000000")
    elif auth == "plausible-wrong-region":
        auth = plausible_auth(key).replace("/us-east-1/", "/Not A Region/")
    elif auth == "plausible-expired":
        old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=20)).strftime("%Y%m%dT%H%M%SZ")
        auth = plausible_auth(key).replace(dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d"), old[:8])
        auth = auth.split("X-Amz-Date: ")[0] + f"X-Amz-Date: {old}\r\n"
    with connect(hostile) as s:
        # Not one byte of the declared body is sent: the answer must come anyway.
        s.sendall(f"POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 5000000\r\n\r\n".encode())
        r = read_reply(s)
        assert r.status == 403 and r.headers["x-amzn-errortype"] == code, r.body
        assert r.json()["message"]
        assert read_until_closed(s) == b""


def test_function_urls_check_the_head_first(hostile):
    key, _ = hostile.credentials()
    for target, auth, status in [
        (hostile.urls["AWS_IAM"], "", 403),
        (hostile.urls["AWS_IAM"], plausible_auth("LLAKNOSUCHKEY0000000"), 403),
        ("/lambda-url/" + "0" * 32 + "/", "", 404),
    ]:
        with connect(hostile) as s:
            s.sendall(f"POST {target} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 5000000\r\n\r\n".encode())
            r = read_reply(s)
            assert r.status == status, (target, r.body)
            assert read_until_closed(s) == b""


def test_plausible_signatures_are_held_to_the_budget(hostile):
    """A client that knows an access key id (not its secret) gets past the
    head's checks; what it may make the server hold is the budget."""
    pid = hostile.proc.pid
    key, _ = hostile.credentials()
    before = memory_kb(pid, "VmHWM")
    head = "POST /2015-03-31/functions HTTP/1.1\r\nHost: x\r\n{auth}Expect: 100-continue\r\nContent-Length: {n}\r\n\r\n"
    # Each declares more than the whole budget: refused unread.
    for _ in range(3):
        with connect(hostile) as s:
            s.sendall(head.format(auth=plausible_auth(key), n=80 * MB).encode())
            r = read_reply(s)
            assert r.status == 429 and r.headers["x-amzn-errortype"] == "TooManyRequestsException"
            assert r.headers["retry-after"] == "1" and r.json()["message"]
    # Two 7 MB bodies fit in 16 MB; the third does not, while they arrive.
    held = [connect(hostile) for _ in range(2)]
    for s in held:
        s.sendall(head.format(auth=plausible_auth(key), n=7 * MB).encode())
        assert read_reply(s).status == 100  # counted, and invited to send
        s.sendall(b"x" * 1000)
    with connect(hostile) as s:
        s.sendall(head.format(auth=plausible_auth(key), n=7 * MB).encode())
        assert read_reply(s).status == 429
    for s in held:
        s.sendall(b"x" * (7 * MB - 1000))
        r = read_reply(s)
        assert r.status == 403 and r.headers["x-amzn-errortype"] == "InvalidSignatureException"
        s.close()
    grown_mb = (memory_kb(pid, "VmHWM") - before) / 1024
    assert grown_mb < BUDGET_MB + 24, f"server peak memory grew {grown_mb:.0f} MB"


def _trickle(sock: socket.socket, head: bytes, seconds_per_byte: float = 2.0, limit: float = 120.0) -> bytes:
    """Sends the head, then one body byte every 2 s (the recv timeout is the
    pacing) until the server answers or hangs up; returns what it said."""
    sock.sendall(head)
    sock.settimeout(seconds_per_byte)
    said = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            sock.sendall(b"x")
        except OSError:
            break
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        said += chunk
    return said


def test_trickled_bodies_meet_the_total_deadline(hostile):
    """One byte every 2 s keeps clear of the progress timeout; the body's
    total deadline still ends it, with a 408 in the route's shape."""
    key, _ = hostile.credentials()
    api = f"POST /2015-03-31/functions HTTP/1.1\r\nHost: x\r\n{plausible_auth(key)}Content-Length: 1000\r\n\r\n".encode()
    url = f"POST {hostile.urls['NONE']} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode()
    said: dict[str, bytes] = {}
    socks = {"api": connect(hostile), "url": connect(hostile)}
    threads = [
        threading.Thread(target=lambda k=k, h=h: said.__setitem__(k, _trickle(socks[k], h))) for k, h in (("api", api), ("url", url))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=150)
    for sock in socks.values():
        sock.close()
    for kind in ("api", "url"):
        assert said[kind].startswith(b"HTTP/1.1 408 "), (kind, said[kind])
        assert b"x-amzn-ErrorType: RequestTimeoutException" in said[kind]
        assert b"Connection: close" in said[kind]


def test_slow_heads_are_cut_and_memory_stays_bounded(hostile):
    pid = hostile.proc.pid
    before = memory_kb(pid, "VmHWM")
    socks = [connect(hostile) for _ in range(48)]
    for s in socks:
        s.sendall(b"POST /2015-03-31/functions HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 40_000)
    said = []
    for s in socks:
        said.append(read_until_closed(s))
        s.close()
    assert all(r.startswith(b"HTTP/1.1 408 ") for r in said), {r[:40] for r in said}
    grown_mb = (memory_kb(pid, "VmHWM") - before) / 1024
    assert grown_mb < 24, f"server peak memory grew {grown_mb:.0f} MB"


def _health(sock: socket.socket) -> Reply:
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    return read_reply(sock)


def test_idle_connections_cannot_lock_new_clients_out(hostile):
    pid = hostile.proc.pid
    fds_before = open_fds(pid)
    idle = []
    for _ in range(MAX_CONNECTIONS):
        idle.append(connect(hostile))
        assert _health(idle[-1]).status == 200
    # And as many again that connect and send nothing at all.
    silent = [connect(hostile) for _ in range(200)]
    assert open_fds(pid) <= fds_before + MAX_CONNECTIONS + 2
    for _ in range(10):
        with connect(hostile) as s:
            assert _health(s).status == 200
    assert open_fds(pid) <= fds_before + MAX_CONNECTIONS + 2
    closed = 0
    for s in idle + silent:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed += 1
        except (BlockingIOError, ConnectionResetError):
            pass
        s.close()
    assert closed >= 10


def _accept_queue(port: int) -> int:
    """The listening socket's accept queue: connections the kernel has
    completed that the server has not accepted."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
                    return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"no listening socket on port {port}")


def test_at_the_cap_the_server_stops_accepting(tmp_path):
    srv = ServerProcess(tmp_path / "d", "--max-connections", "4", "--head-timeout", "300", "--body-timeout", "600").start()
    try:
        key, _ = srv.credentials()
        busy = [connect(srv) for _ in range(4)]
        for s in busy:
            s.sendall(
                f"POST /2015-03-31/functions HTTP/1.1\r\nHost: x\r\n{plausible_auth(key)}Expect: 100-continue\r\nContent-Length: 10\r\n\r\n".encode()
            )
            assert read_reply(s).status == 100  # each is in the middle of a request
        # The fifth is accepted and held unread; the sixth stays with the kernel.
        held = connect(srv)
        held.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: _accept_queue(srv.port) == 0)
        queued = connect(srv)
        queued.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: _accept_queue(srv.port) == 1)
        for s in (held, queued):
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.recv(1)
            s.setblocking(True)
        busy[0].close()
        assert read_reply(held).status == 200
        busy[1].close()
        assert read_reply(queued).status == 200
        assert _accept_queue(srv.port) == 0
        for s in busy[2:]:
            s.sendall(b"0123456789")
            assert read_reply(s).status == 403
            s.close()
        held.close()
        queued.close()
    finally:
        assert srv.stop() == 0


def _statuses(stream: bytes) -> list[int]:
    """The status of every response in a stream of them (no body here holds a status line)."""
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", stream)]


def test_pipelined_requests(hostile):
    with connect(hostile) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 200 + b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _statuses(read_until_closed(s)) == [200] * 201
    # A refused request in a pipeline ends the connection there; what
    # followed it is not answered.
    with connect(hostile) as s:
        s.sendall(
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            + f"POST /2015-03-31/functions HTTP/1.1\r\nHost: x\r\nContent-Length: {80 * MB}\r\n\r\n".encode()
            + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert _statuses(read_until_closed(s)) == [200, 403]


def test_a_pipelining_client_that_never_reads_holds_little(hostile):
    """Requests sent without reading a response: the server stops reading
    when its responses back up, so it buffers at most a request or two."""
    pid = hostile.proc.pid
    before = memory_kb(pid, "VmHWM")
    with connect(hostile) as s:
        s.setblocking(False)
        request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 1000
        sent = 0
        stalled = 0
        # Send until the server and both sockets' buffers are full.
        while stalled < 50:
            try:
                sent += s.send(request)
                stalled = 0
            except BlockingIOError:
                stalled += 1
                time.sleep(0.02)
        assert sent > 1 * MB
    grown_mb = (memory_kb(pid, "VmHWM") - before) / 1024
    assert grown_mb < 24, f"server peak memory grew {grown_mb:.0f} MB"


# -- the TLS + HTTP/2 port (hypercorn) keeps the same limits ------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    key, crt = make_test_cert(d)
    srv = ServerProcess(
        d / "data",
        "--tls-port",
        str(free_port()),
        "--tls-cert",
        str(crt),
        "--tls-key",
        str(key),
        "--unauthenticated-buffer-mb",
        str(BUDGET_MB),
        "--head-timeout",
        str(HEAD_TIMEOUT),
        "--body-timeout",
        str(BODY_TIMEOUT),
        "--max-connections",
        "8",
    ).start()
    srv.tls_port = int(re.search(r"https://127\.0\.0\.1:(\d+)", "".join(srv.output)).group(1))
    srv.context = ssl.create_default_context(cafile=str(crt))
    srv.cafile = str(crt)
    yield srv
    assert srv.stop() == 0, "".join(srv.output)


def tls_connect(srv, alpn: str = "http/1.1") -> ssl.SSLSocket:
    srv.context.set_alpn_protocols([alpn])
    raw = socket.create_connection(("127.0.0.1", srv.tls_port), timeout=60)
    return srv.context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_tls_unsigned_bodies_are_refused_before_they_are_read(tls_server):
    pid = tls_server.proc.pid
    before = memory_kb(pid, "VmHWM")
    body = bytes(80 * MB)
    for _ in range(3):
        with tls_connect(tls_server) as s:
            s.sendall(f"POST /2015-03-31/functions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode())
            r = read_reply(s)
            assert r.status == 403 and r.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
            send_quietly(s, body)
    grown_mb = (memory_kb(pid, "VmHWM") - before) / 1024
    assert grown_mb < 24, f"server peak memory grew {grown_mb:.0f} MB for bodies it refused"


def test_http2_unsigned_body_is_refused_before_it_is_sent(tls_server):
    import h2.connection
    import h2.events

    with tls_connect(tls_server, "h2") as s:
        assert s.selected_alpn_protocol() == "h2"
        conn = h2.connection.H2Connection()
        conn.initiate_connection()
        conn.send_headers(
            1,
            [
                (":method", "POST"),
                (":path", "/2015-03-31/functions"),
                (":authority", "x"),
                (":scheme", "https"),
                ("content-length", str(80 * MB)),
            ],
            end_stream=False,
        )
        s.sendall(conn.data_to_send())
        status, body, done = None, b"", False
        while not done:
            data = s.recv(65536)
            assert data, "closed before a response"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers)[b":status"]
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    done = True
            s.sendall(conn.data_to_send())
    assert status == b"403" and json.loads(body) == {"message": "Missing Authentication Token"}


def test_tls_trickled_body_meets_the_total_deadline(tls_server):
    key, _ = tls_server.credentials()
    with tls_connect(tls_server) as s:
        said = _trickle(s, f"POST /2015-03-31/functions HTTP/1.1\r\nHost: x\r\n{plausible_auth(key)}Content-Length: 1000\r\n\r\n".encode())
    assert said.startswith(b"HTTP/1.1 408 "), said
    assert b"requesttimeoutexception" in said.lower()


def test_tls_slow_readers_are_held_to_the_budget(tls_server):
    lam = boto3.client(
        "lambda",
        endpoint_url=f"https://127.0.0.1:{tls_server.tls_port}",
        region_name="us-east-1",
        aws_access_key_id=tls_server.credentials()[0],
        aws_secret_access_key=tls_server.credentials()[1],
        verify=tls_server.cafile,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )
    lam.create_function(
        FunctionName="big-answer",
        Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
        Role=ROLE,
        Handler="app.handler",
        MemorySize=256,
        Code={
            "ZipFile": make_zip({"app.py": "BODY = 'x' * 5_000_000\ndef handler(e, c):\n    return {'statusCode': 200, 'body': BODY}\n"})
        },
    )
    path = "/" + lam.create_function_url_config(FunctionName="big-answer", AuthType="NONE")["FunctionUrl"].split("/", 3)[3]
    allow_public_url(lam, "big-answer")
    pid = tls_server.proc.pid
    rss_before = memory_kb(pid, "VmRSS")
    readers = []
    for _ in range(6):
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.settimeout(60)
        raw.connect(("127.0.0.1", tls_server.tls_port))
        tls_server.context.set_alpn_protocols(["http/1.1"])
        s = tls_server.context.wrap_socket(raw, server_hostname="127.0.0.1")
        readers.append(s)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        wait_for(lambda s=s: _unread(s) > 0, timeout=60)  # the answer has started
    # A 5 MB answer waiting over TLS is held with its encrypted copy: 16 MB
    # holds one; the others were cut off.
    wait_for(lambda: memory_kb(pid, "VmRSS") - rss_before < (BUDGET_MB + 16) * 1024, timeout=30)
    lengths = []
    for s in readers:
        try:
            lengths.append(len(read_reply(s).body))
        except (AssertionError, OSError):
            lengths.append(0)
        s.close()
    assert lengths[0] == 5_000_000 and all(n < 5_000_000 for n in lengths[1:])


def _accepted(port: int) -> int:
    """Connections to this port that the server has accepted (a socket still
    in the kernel's accept queue has no inode yet)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[1].endswith(f":{port:04X}") and fields[3] == "01" and fields[9] != "0":
                    n += 1
    return n


def test_tls_connections_are_capped_and_slow_handshakes_cut(tls_server):
    port = tls_server.tls_port
    wait_for(lambda: _accepted(port) == 0, timeout=30)  # what earlier tests left has timed out
    # TCP connections that never start their TLS handshake.
    silent = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(30)]
    # Eight slots, and one more accepted and held until a slot frees.
    wait_for(lambda: _accepted(port) >= 8)
    assert _accepted(port) <= 9
    for s in silent:
        assert read_until_closed(s) == b""  # the handshake timeout, once accepted
        assert _accepted(port) <= 9
        s.close()


def _unread(sock: socket.socket) -> int:
    return struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0"))[0]


def test_slow_readers_of_large_responses_are_held_to_the_budget(hostile):
    """Anyone may call a URL with AuthType NONE and then not read its 5 MB
    answer: what waits on such readers counts against the budget, and a
    reader past it is cut off instead of pinning another 5 MB."""
    pid = hostile.proc.pid
    rss_before = memory_kb(pid, "VmRSS")
    readers = []
    for _ in range(8):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that takes little
        s.settimeout(60)
        s.connect(("127.0.0.1", hostile.port))
        s.sendall(f"GET {hostile.urls['big']} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        wait_for(lambda s=s: _unread(s) > 0, timeout=60)  # the answer has started
        readers.append(s)
    # 16 MB holds three 5 MB answers; the others were cut off after what the
    # kernel had taken of them.
    wait_for(lambda: memory_kb(pid, "VmRSS") - rss_before < (BUDGET_MB + 16) * 1024, timeout=30)
    lengths = []
    for s in readers:
        lengths.append(len(read_reply(s).body))
        s.close()
    assert lengths[:3] == [5_000_000] * 3
    assert all(n < 5_000_000 for n in lengths[3:])
