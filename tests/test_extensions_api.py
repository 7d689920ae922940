"""The Extensions API's and the Telemetry API's rules
(gateway/execution/runtime_api/extensions.py, telemetry.py and dispatch.py),
driven without sockets: raw HTTP bytes per connection through
wire.RequestReader, and calls handed in as the pool hands them.

The status codes and error types are the Runtime Interface Emulator's;
the same flows run against real sandboxes in tests/test_extensions.py.
"""

from __future__ import annotations

import json
import os
import socket
import uuid

import pytest
import trio

from lambdalet.gateway.execution.runtime_api import dispatch, wire
from lambdalet.gateway.execution.runtime_api import extensions as ex
from lambdalet.gateway.execution.runtime_api import telemetry as tm
from lambdalet.gateway.execution.runtime_api.outputs import PROGRESS, AgentFailed, Close, Send, Subscribed
from lambdalet.runtime.protocol import ExtensionsStarted, FrameReader, Init, encode

HOST = "Host: 127.0.0.1:9001\r\n"


def request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\n{HOST}Content-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return head.encode() + b"\r\n" + body


def parse_reply(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert int(headers["content-length"]) == len(body)
    return int(lines[0].split(" ")[1]), headers, body


class Driver:
    """One sandbox's API (the Runtime API absent, as on the Python fast
    path) and its connections' readers."""

    def __init__(self, external=("ext-a",)) -> None:
        self.ext = ex.ExtensionsApi(
            list(external), function_name="fn", function_version="$LATEST", handler="app.handler", account_id="000000000000"
        )
        self.api = dispatch.SandboxApi(None, self.ext)
        self.readers: dict[int, wire.RequestReader] = {}

    def send(self, conn: int, data: bytes) -> list:
        reader = self.readers.setdefault(conn, wire.RequestReader())
        reader.feed(data)
        out = []
        while (event := reader.next_event()) is not wire.NEED_DATA:
            out += self.api.receive(conn, event)
        return out

    def reply(self, conn: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
        sends = [o for o in self.send(conn, data) if isinstance(o, Send)]
        assert len(sends) == 1, sends
        return parse_reply(sends[0].data)

    def register(self, conn: int, name: str, events=("INVOKE", "SHUTDOWN"), features: str | None = None) -> str:
        headers = {"Lambda-Extension-Name": name}
        if features:
            headers["Lambda-Extension-Accept-Feature"] = features
        status, headers, body = self.reply(conn, request("POST", ex.REGISTER_PATH, json.dumps({"events": list(events)}).encode(), headers))
        assert status == 200, body
        return headers["lambda-extension-identifier"]

    def next(self, conn: int, ident: str) -> list:
        return self.send(conn, request("GET", ex.NEXT_PATH, headers={"Lambda-Extension-Identifier": ident}))


def event_of(outputs: list) -> dict:
    sends = [o for o in outputs if isinstance(o, Send)]
    assert len(sends) == 1, outputs
    status, headers, body = parse_reply(sends[0].data)
    assert status == 200
    uuid.UUID(headers["lambda-extension-event-identifier"])
    return json.loads(body)


def test_register_answers_an_identifier_and_the_functions_metadata():
    d = Driver()
    status, headers, body = d.reply(
        1,
        request(
            "POST",
            ex.REGISTER_PATH,
            b'{"events":["INVOKE","SHUTDOWN"]}',
            {"Lambda-Extension-Name": "ext-a", "Lambda-Extension-Accept-Feature": "accountId"},
        ),
    )
    assert status == 200
    uuid.UUID(headers["lambda-extension-identifier"])
    assert json.loads(body) == {"functionName": "fn", "functionVersion": "$LATEST", "handler": "app.handler", "accountId": "000000000000"}
    assert d.ext.registered()


def test_init_waits_for_every_extensions_first_next_and_a_call_for_its_next_again():
    d = Driver(("ext-a", "ext-b"))
    assert not d.ext.registered()
    a = d.register(1, "ext-a")
    assert not d.ext.registered() and d.ext.pending_external() == ["ext-b"]
    b = d.register(2, "ext-b", events=("SHUTDOWN",))
    assert d.ext.registered()
    assert not d.ext.ready()  # neither has finished its init
    assert d.next(1, a) == [PROGRESS]  # parked: no answer yet
    assert not d.ext.ready()
    d.next(2, b)
    assert d.ext.ready()
    d.ext.close_init()
    # A call: INVOKE goes to ext-a only (ext-b registered for SHUTDOWN).
    doc = event_of(d.ext.invoke("req-1", 1234, "arn:aws:lambda:us-east-1:000000000000:function:fn", "Root=1-x"))
    assert doc == {
        "eventType": "INVOKE",
        "deadlineMs": 1234,
        "requestId": "req-1",
        "invokedFunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:fn",
        "tracing": {"type": "X-Amzn-Trace-Id", "value": "Root=1-x"},
    }
    assert not d.ext.ready()
    d.next(1, a)
    assert d.ext.ready()
    # SHUTDOWN goes to both, to the `next` each has waiting.
    out = d.ext.shutdown("spindown", 99)
    sends = [o for o in out if isinstance(o, Send)]
    assert sorted(s.conn for s in sends) == [1, 2]
    assert json.loads(parse_reply(sends[0].data)[2]) == {"eventType": "SHUTDOWN", "shutdownReason": "spindown", "deadlineMs": 99}


def test_an_event_waits_for_a_next_that_comes_later():
    d = Driver()
    a = d.register(1, "ext-a")
    d.next(1, a)
    d.ext.close_init()
    event_of(d.ext.invoke("r1", 1, "arn", "t"))
    assert d.ext.invoke("r2", 2, "arn", "t") == []  # no `next` waits: kept for the next one
    assert event_of(d.next(1, a))["requestId"] == "r2"


@pytest.mark.parametrize(
    "headers, error_type",
    [
        ({}, "Extension.MissingExtensionIdentifier"),
        ({"Lambda-Extension-Identifier": "not-a-uuid"}, "Extension.InvalidExtensionIdentifier"),
        ({"Lambda-Extension-Identifier": str(uuid.uuid4())}, "Extension.UnknownExtensionIdentifier"),
    ],
)
def test_requests_without_a_valid_identifier_get_403(headers, error_type):
    d = Driver()
    status, _, body = d.reply(1, request("GET", ex.NEXT_PATH, headers=headers))
    assert status == 403 and json.loads(body)["errorType"] == error_type


def test_registration_misuse_is_refused_in_the_emulators_words():
    d = Driver()
    bad = [
        ({"Lambda-Extension-Name": ""}, b"{}", "Extension.InvalidExtensionName"),
        ({"Lambda-Extension-Name": "ext-a"}, b'{"events":["BOOT"]}', "Extension.InvalidEventType"),
        ({"Lambda-Extension-Name": "inside"}, b'{"events":["SHUTDOWN"]}', "Extension.InvalidEventType"),
        ({"Lambda-Extension-Name": "ext-a"}, b"[1]", "InvalidRequestFormat"),
        ({"Lambda-Extension-Name": "ext-a"}, b"{not json", "InvalidRequestFormat"),
    ]
    for headers, body, error_type in bad:
        status, _, reply = d.reply(1, request("POST", ex.REGISTER_PATH, body, headers))
        assert (status, json.loads(reply)["errorType"]) == (403, error_type), headers
    d.register(1, "ext-a")
    status, _, reply = d.reply(1, request("POST", ex.REGISTER_PATH, b'{"events":["INVOKE"]}', {"Lambda-Extension-Name": "ext-a"}))
    assert status == 403 and json.loads(reply)["errorType"] == "Extension.InvalidExtensionState"
    d.ext.close_init()
    status, _, reply = d.reply(1, request("POST", ex.REGISTER_PATH, b'{"events":["INVOKE"]}', {"Lambda-Extension-Name": "late"}))
    assert status == 403 and json.loads(reply)["errorType"] == "Extension.RegistrationClosed"


def test_too_many_extensions_are_refused():
    d = Driver(())
    for i in range(ex.MAX_EXTENSIONS):
        d.register(i, f"internal-{i}", events=("INVOKE",))
    status, _, reply = d.reply(99, request("POST", ex.REGISTER_PATH, b'{"events":["INVOKE"]}', {"Lambda-Extension-Name": "one-more"}))
    assert status == 403 and json.loads(reply)["errorType"] == "Extension.TooManyExtensions"


def test_init_error_and_exit_error_fail_the_environment_with_the_platforms_type():
    d = Driver(("ext-a", "ext-b"))
    a = d.register(1, "ext-a")
    b = d.register(2, "ext-b")
    # Without the error type header: refused, nothing fails.
    status, _, reply = d.reply(1, request("POST", ex.INIT_ERROR_PATH, b"{}", {"Lambda-Extension-Identifier": a}))
    assert status == 403 and json.loads(reply)["errorType"] == "Extension.MissingHeader"
    out = d.send(
        1,
        request(
            "POST",
            ex.INIT_ERROR_PATH,
            b"{}",
            {"Lambda-Extension-Identifier": a, "Lambda-Extension-Function-Error-Type": "Extension.ConfigInvalid"},
        ),
    )
    assert parse_reply(next(o for o in out if isinstance(o, Send)).data)[0] == 202
    failed = next(o for o in out if isinstance(o, AgentFailed))
    assert (failed.name, failed.error_type, failed.reported) == ("ext-a", "Extension.InitError", "Extension.ConfigInvalid")
    assert d.ext.failure is failed
    # A failed extension is not waited for, and may not ask for events.
    d.next(2, b)
    assert d.ext.ready()
    status, _, reply = d.reply(3, request("GET", ex.NEXT_PATH, headers={"Lambda-Extension-Identifier": a}))
    assert status == 403 and json.loads(reply)["errorType"] == "Extension.InvalidExtensionState"
    d.ext.close_init()
    out = d.send(
        4,
        request(
            "POST", ex.EXIT_ERROR_PATH, b"{}", {"Lambda-Extension-Identifier": b, "Lambda-Extension-Function-Error-Type": "Extension.Oops"}
        ),
    )
    assert next(o for o in out if isinstance(o, AgentFailed)).error_type == "Extension.ExitError"


def test_an_extension_that_goes_is_not_waited_for():
    d = Driver(("ext-a", "ext-b"))
    d.register(1, "ext-a")
    assert not d.ext.registered()
    d.ext.forget("ext-b")  # its process exited before it registered
    assert d.ext.registered()
    d.ext.forget("ext-a")
    assert d.ext.ready()


def test_subscriptions_are_checked_and_close_with_init():
    d = Driver()
    a = d.register(1, "ext-a")
    ident = {"Lambda-Extension-Identifier": a}
    good = {
        "schemaVersion": "2022-12-13",
        "types": ["platform", "function"],
        "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
        "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:4243/in?x=1"},
    }
    out = d.send(2, request("PUT", ex.TELEMETRY_PATH, json.dumps(good).encode(), ident))
    sub = next(o for o in out if isinstance(o, Subscribed)).subscription
    assert (sub.port, sub.path, sub.max_items, sub.timeout_ms, sub.types) == (
        4243,
        "/in?x=1",
        1000,
        25,
        frozenset({"platform", "function"}),
    )
    for change, words in [
        ({"schemaVersion": "2000-01-01"}, "schemaVersion"),
        ({"types": ["everything"]}, "types"),
        ({"types": []}, "types"),
        ({"buffering": {"maxItems": 10}}, "maxItems"),
        ({"buffering": {"timeoutMs": 10**9}}, "timeoutMs"),
        ({"buffering": {"maxBytes": True}}, "maxBytes"),
        ({"destination": {"protocol": "TCP", "URI": "http://sandbox.localdomain:1/"}}, "protocol"),
        ({"destination": {"protocol": "HTTP", "URI": "http://10.0.0.1:80/"}}, "inside the sandbox"),
        ({"destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain/"}}, "inside the sandbox"),
        ({"destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:99999/"}}, "URI"),
    ]:
        status, _, reply = d.reply(3, request("PUT", ex.TELEMETRY_PATH, json.dumps({**good, **change}).encode(), ident))
        doc = json.loads(reply)
        assert status == 400 and doc["errorType"] == "ValidationError" and words in doc["errorMessage"], (change, doc)
    status, _, reply = d.reply(3, request("PUT", ex.LOGS_PATH, json.dumps(good).encode(), ident))
    assert status == 400 and json.loads(reply)["errorType"] == "Logs.NotSupported"
    d.ext.close_init()
    status, _, reply = d.reply(3, request("PUT", ex.TELEMETRY_PATH, json.dumps(good).encode(), ident))
    assert status == 403 and json.loads(reply)["errorType"] == "Telemetry.SubscriptionClosed"


def test_oversized_bodies_are_refused_and_a_flood_closes_the_connection():
    d = Driver()
    big = b"x" * (ex.MAX_BODY + 1)
    status, _, _ = d.reply(1, request("POST", ex.REGISTER_PATH, big, {"Lambda-Extension-Name": "ext-a"}))
    assert status == 413
    head = f"POST {ex.REGISTER_PATH} HTTP/1.1\r\n{HOST}Transfer-Encoding: chunked\r\nLambda-Extension-Name: ext-a\r\n\r\n".encode()
    chunk = b"%x\r\n%s\r\n" % (65536, b"y" * 65536)
    out = d.send(2, head)
    for _ in range((ex.MAX_BODY + ex.MAX_DRAIN) // 65536 + 2):
        out += d.send(2, chunk)
        if any(isinstance(o, Close) for o in out):
            break
    assert any(isinstance(o, Close) for o in out)


def test_the_runtime_apis_paths_answer_404_on_the_python_fast_path():
    d = Driver()
    status, _, _ = d.reply(1, request("GET", "/2018-06-01/runtime/invocation/next"))
    assert status == 404
    status, _, _ = d.reply(1, request("GET", ex.REGISTER_PATH))
    assert status == 405


# -- the Telemetry API's schema and buffers ---------------------------------------


def _sub(**kw) -> tm.Subscription:
    base = dict(
        schema_version="2022-12-13",
        types=frozenset(tm.TYPES),
        max_items=1000,
        max_bytes=262144,
        timeout_ms=25,
        host="127.0.0.1",
        port=1,
        path="/",
    )
    base.update(kw)
    return tm.Subscription(**base)


def test_platform_events_follow_the_schema():
    rid, trace = "8476a536-e9f4-11e8-9739-2dfe598c3fcd", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
    ms = 1_700_000_000_123
    events = [
        json.loads(e.data)
        for e in (
            tm.init_start(
                ms,
                initialization_type="on-demand",
                runtime_version="python:3.12.v1",
                function_name="fn",
                function_version="$LATEST",
                instance_id="abc",
                memory_mb=128,
            ),
            tm.init_runtime_done(ms, initialization_type="on-demand", status="success"),
            tm.init_report(ms, initialization_type="on-demand", status="success", duration_ns=12_345_678),
            tm.start(ms, rid, "$LATEST", trace),
            tm.runtime_done(
                ms,
                request_id=rid,
                status="error",
                error_type="Function.Unhandled",
                duration_ns=2_500_000,
                produced_bytes=12,
                started_ms=ms,
                trace_id=trace,
            ),
            tm.report(
                ms,
                request_id=rid,
                status="success",
                error_type=None,
                duration_ns=2_500_000,
                billed_ms=3,
                memory_mb=128,
                max_memory_mb=31,
                init_ns=None,
                trace_id=trace,
            ),
            tm.logs_dropped(ms, 3, 400),
        )
    ]
    assert [e["type"] for e in events] == [
        "platform.initStart",
        "platform.initRuntimeDone",
        "platform.initReport",
        "platform.start",
        "platform.runtimeDone",
        "platform.report",
        "platform.logsDropped",
    ]
    assert all(e["time"] == "2023-11-14T22:13:20.123Z" for e in events)
    assert events[0]["record"]["instanceMaxMemory"] == 128 * 1048576
    assert events[2]["record"]["metrics"] == {"durationMs": 12.346}
    assert events[3]["record"] == {"requestId": rid, "version": "$LATEST", "tracing": {"type": "X-Amzn-Trace-Id", "value": trace}}
    done = events[4]["record"]
    assert (done["status"], done["errorType"], done["metrics"]) == ("error", "Function.Unhandled", {"durationMs": 2.5, "producedBytes": 12})
    assert [s["name"] for s in done["spans"]] == ["responseLatency", "responseDuration"]
    assert "errorType" not in events[5]["record"]
    assert events[5]["record"]["metrics"] == {"durationMs": 2.5, "billedDurationMs": 3, "memorySizeMB": 128, "maxMemoryUsedMB": 31}
    assert events[6]["record"] == {"reason": tm.DROPPED_REASON, "droppedRecords": 3, "droppedBytes": 400}


def test_log_lines_become_records_stamped_when_written_text_or_json():
    text = b'first\n{"level":"INFO","message":"hi"}\n\nlast without newline'
    events = tm.log_lines("function", text, [(6, 1000), (38, 2000)], 3000, json_format=False)
    docs = [json.loads(e.data) for e in events]
    assert [d["record"] for d in docs] == ["first", '{"level":"INFO","message":"hi"}', "last without newline"]
    assert [d["time"] for d in docs] == ["1970-01-01T00:00:01.000Z", "1970-01-01T00:00:02.000Z", "1970-01-01T00:00:03.000Z"]
    # Marks are the sandbox's word: out of order or out of range, they are clamped.
    docs = [json.loads(e.data) for e in tm.log_lines("function", text, [(6, 10**18), (38, -5)], 3000, json_format=False, start_ms=500)]
    assert [d["time"] for d in docs] == ["1970-01-01T00:00:03.000Z"] * 3
    assert {d["type"] for d in docs} == {"function"}
    docs = [json.loads(e.data) for e in tm.log_lines("function", text, [], 3000, json_format=True)]
    assert docs[1]["record"] == {"level": "INFO", "message": "hi"} and docs[0]["record"] == "first"


def test_a_buffer_batches_by_items_and_bytes_in_order_and_filters_by_type():
    buf = tm.Buffer(_sub(types=frozenset({"function"}), max_items=1000, max_bytes=262144))
    assert not buf.add(tm.start(0, "r", "$LATEST", "t"), 0)  # platform: not subscribed
    lines = tm.log_lines("function", b"".join(b"line %d\n" % i for i in range(2500)), [], 0, json_format=False)
    for e in lines:
        buf.add(e, 0)
    assert buf.full() and buf.due_ms() == 25
    batches = []
    while (batch := buf.take(0)) is not None:
        batches.append(json.loads(batch))
    assert [len(b) for b in batches] == [1000, 1000, 500]
    assert [e["record"] for b in batches for e in b] == [f"line {i}" for i in range(2500)]


def test_a_subscriber_that_falls_behind_loses_events_counted_in_logs_dropped():
    buf = tm.Buffer(_sub(), queue_items=3)
    for i in range(5):
        buf.add(tm.log_lines("function", b"l%d\n" % i, [], 0, json_format=False)[0], 0)
    batch = json.loads(buf.take(7))
    assert batch[0]["type"] == "platform.logsDropped" and batch[0]["record"]["droppedRecords"] == 2
    assert [e["record"] for e in batch[1:]] == ["l0", "l1", "l2"]


def test_a_batch_that_could_not_go_is_first_again():
    buf = tm.Buffer(_sub(max_items=1000))
    for i in range(3):
        buf.add(tm.log_lines("function", b"l%d\n" % i, [], 0, json_format=False)[0], 0)
    batch = buf.take(0)
    buf.put_back(batch)
    assert [e["record"] for e in json.loads(buf.take(0))] == ["l0", "l1", "l2"]


# -- a worker that lies in its ExtensionsStarted frame -------------------------------------


class _Channel:
    """What extension_start.start() reads of an instance: the gateway's end
    of a control channel, here a real socketpair whose other end lies."""

    def __init__(self, sock) -> None:
        self.sock = sock
        self.reader = FrameReader("from_worker")
        self.extensions = None
        self.id = "lying"


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("lie", ["fewer-fds-than-names", "a-file-for-a-pidfd", "a-socket-that-does-not-listen", "one-name-twice"])
def test_a_worker_that_lies_about_the_extensions_it_started_is_gone(lie, tmp_path):
    from lambdalet.gateway.execution.instance import WorkerGone
    from lambdalet.gateway.execution.runtime_api import extension_start, platform_events

    async def main():
        ours, theirs = socket.socketpair()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        if lie != "a-socket-that-does-not-listen":
            listener.listen(1)
        log = os.memfd_create("log")
        pidfd = os.pidfd_open(os.getpid())
        extra = os.open(tmp_path / "f", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC)
        names = {"fewer-fds-than-names": ["a", "b"], "one-name-twice": ["a", "a"]}.get(lie, ["a"])
        fds = [listener.fileno(), log, extra if lie == "a-file-for-a-pidfd" else pidfd]
        if lie == "one-name-twice":
            fds.append(pidfd)
        before = _fds()
        socket.send_fds(theirs, [encode(ExtensionsStarted(9001, names, []))], fds)
        ours.setblocking(False)
        init = Init(
            handler="h",
            task_root="/var/task",
            env={},
            function_name="f",
            function_version="$LATEST",
            memory_mb=128,
            log_group="g",
            log_stream="s",
        )
        figures = platform_events.Figures(
            function_name="f",
            version="$LATEST",
            runtime_version="",
            initialization_type="on-demand",
            memory_mb=128,
            json_logs=False,
            account_id="0",
            handler="h",
        )
        try:
            async with trio.open_nursery() as nursery:
                with pytest.raises(WorkerGone):
                    await extension_start.start(_Channel(ours), init, figures, nursery, 0)
            assert _fds() - before == set()  # whatever came with the lie was closed
        finally:
            for thing in (ours, theirs, listener):
                thing.close()
            os.close(extra)
            os.close(log)
            os.close(pidfd)

    trio.run(main)


def test_an_extension_that_subscribes_again_changes_its_subscription_and_keeps_what_waits():
    from lambdalet.gateway.execution.runtime_api import telemetry_delivery

    async def main():
        deliveries = telemetry_delivery.Deliveries(connect=None)
        deliveries.init_over()
        deliveries.subscribe("ext-a", _sub(port=1, types=frozenset({"function"})))
        deliveries.emit(tm.log_lines("function", b"one\n", [], 0, json_format=False))
        deliveries.subscribe("ext-a", _sub(port=2, types=frozenset({"function"})))
        deliveries.emit(tm.log_lines("function", b"two\n", [], 0, json_format=False))
        (subscriber,) = deliveries.subscribers
        assert subscriber.buffer.sub.port == 2
        assert [e["record"] for e in json.loads(subscriber.buffer.take(0))] == ["one", "two"]

    trio.run(main)
