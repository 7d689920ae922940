"""The Runtime API's rules (gateway/execution/runtime_api/state.py), driven
without sockets: raw HTTP bytes per connection through wire.RequestReader,
and calls handed in as the pool would.

Status codes and bodies are the Runtime Interface Emulator's (AWS's
open-source copy of the service's runtime side); each misuse the issue
names has a test here, and the same misuses are tested against real
sandboxes in tests/test_custom_runtimes.py.
"""

from __future__ import annotations

import base64
import json
import random

import pytest

from lambdalet.gateway.execution.runtime_api import state as st
from lambdalet.gateway.execution.runtime_api import wire
from lambdalet.gateway.execution.runtime_api.outputs import Answered, InitFailed, Send, StreamData
from lambdalet.gateway.execution.runtime_api.runtime_errors import ERROR_CAUSE_CONTENT_TYPE
from lambdalet.gateway.http.http1 import ProtocolError

NEXT = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n\r\n"


def post(path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nContent-Length: {len(body)}\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    return head.encode() + b"\r\n" + body


def response(request_id: str, body: bytes = b"{}", headers: dict[str, str] | None = None) -> bytes:
    return post(f"/2018-06-01/runtime/invocation/{request_id}/response", body, headers)


def error(request_id: str, body: bytes = b"{}", headers: dict[str, str] | None = None) -> bytes:
    return post(f"/2018-06-01/runtime/invocation/{request_id}/error", body, headers)


def chunked(path: str, chunks: list[bytes], trailers: dict[str, str], headers: dict[str, str]) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n"
    body += "".join(f"{k}: {v}\r\n" for k, v in trailers.items()).encode() + b"\r\n"
    return head.encode() + body


def parse_reply(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert int(headers["content-length"]) == len(body)
    return status, headers, body


class Driver:
    """One RuntimeApi and its connections' readers; collects outputs."""

    def __init__(self, **limits) -> None:
        self.api = st.RuntimeApi(**limits)
        self.readers: dict[int, wire.RequestReader] = {}

    def send(self, conn: int, data: bytes) -> list:
        reader = self.readers.setdefault(conn, wire.RequestReader())
        reader.feed(data)
        out = []
        while (event := reader.next_event()) is not wire.NEED_DATA:
            out += self.api.receive(conn, event)
        return out

    def init(self, conn: int = 1) -> None:
        assert kinds(self.send(conn, NEXT)) == ["InitDone"]
        assert self.api.state is st.State.READY and self.api.parked(conn)

    def call(self, request_id: str = "req-1", payload: bytes = b'{"x": 1}') -> Send:
        out = self.api.invoke(
            st.Invocation(
                request_id,
                payload,
                1_900_000_000_000,
                "arn:aws:lambda:us-east-1:123456789012:function:f",
                "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0",
            )
        )
        assert len(out) == 1 and isinstance(out[0], Send)
        return out[0]


def kinds(outputs: list) -> list[str]:
    return [type(o).__name__ for o in outputs]


def only_send(outputs: list) -> Send:
    sends = [o for o in outputs if isinstance(o, Send)]
    assert len(sends) == 1, outputs
    return sends[0]


def json_reply(outputs: list) -> tuple[int, dict]:
    status, headers, body = parse_reply(only_send(outputs).data)
    assert headers["content-type"] == "application/json"
    return status, json.loads(body)


def answered(outputs: list) -> Answered:
    found = [o for o in outputs if isinstance(o, Answered)]
    assert len(found) == 1, outputs
    return found[0]


def test_next_hands_out_the_event_with_the_context_headers():
    d = Driver()
    d.init()
    sent = d.call(payload=b'{"x": 1}')
    assert sent.conn == 1 and sent.delivers == "req-1" and not sent.close
    status, headers, body = parse_reply(sent.data)
    assert status == 200 and body == b'{"x": 1}'
    assert headers["lambda-runtime-aws-request-id"] == "req-1"
    assert headers["lambda-runtime-deadline-ms"] == "1900000000000"
    assert headers["lambda-runtime-invoked-function-arn"] == "arn:aws:lambda:us-east-1:123456789012:function:f"
    assert headers["lambda-runtime-trace-id"].startswith("Root=1-")
    assert headers["content-type"] == "application/json"
    assert "lambda-runtime-client-context" not in headers and "lambda-runtime-cognito-identity" not in headers
    assert d.api.state is st.State.RUNNING


def test_client_context_and_cognito_identity_where_present():
    d = Driver()
    d.init()
    out = d.api.invoke(
        st.Invocation(
            "r",
            b"{}",
            1,
            "arn",
            "Root=1-a-b",
            client_context='{"custom":{"k":"v"}}',
            cognito_identity='{"cognitoIdentityId":"i","cognitoIdentityPoolId":"p"}',
        )
    )
    _, headers, _ = parse_reply(only_send(out).data)
    assert json.loads(headers["lambda-runtime-client-context"]) == {"custom": {"k": "v"}}
    assert json.loads(headers["lambda-runtime-cognito-identity"])["cognitoIdentityId"] == "i"


def test_a_call_waits_for_next_when_none_is_parked():
    d = Driver()
    d.init()
    d.call("req-1")
    out = d.send(1, response("req-1", b'"one"'))
    assert json_reply(out) == (202, {"status": "OK"})
    assert answered(out).payload == b'"one"' and answered(out).error_type is None
    assert d.api.state is st.State.RESPONSE_SENT
    # The pool hands in the next call before the runtime asks for it.
    assert d.api.invoke(st.Invocation("req-2", b"2", 1, "arn", "t")) == []
    out = d.send(1, NEXT)
    assert kinds(out) == ["Send"] and out[0].delivers == "req-2"
    assert parse_reply(out[0].data)[2] == b"2"


def test_response_then_error_for_the_same_call_is_invalid_request_id():
    d = Driver()
    d.init()
    d.call("req-1")
    assert json_reply(d.send(1, response("req-1")))[0] == 202
    for again in (response("req-1"), error("req-1")):
        assert json_reply(d.send(1, again)) == (400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"})
    assert d.api.state is st.State.RESPONSE_SENT


def test_unknown_request_id_is_invalid_request_id_and_the_call_stays_open():
    d = Driver()
    d.init()
    d.call("req-1")
    for wrong in (response("nope"), error("nope"), response("req-2")):
        out = d.send(2, wrong)
        assert json_reply(out) == (400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"})
        assert not any(isinstance(o, Answered) for o in out)
    assert answered(d.send(2, response("req-1", b"ok"))).payload == b"ok"


def test_an_answer_before_any_call_is_invalid_request_id():
    d = Driver()
    assert json_reply(d.send(1, response("req-1")))[0] == 400
    d.init(2)
    assert json_reply(d.send(1, error("req-1")))[0] == 400


def test_next_while_a_call_is_open_returns_the_same_call_again():
    d = Driver()
    d.init()
    first = d.call("req-1")
    again = only_send(d.send(2, NEXT))
    assert again.conn == 2 and again.delivers == ""  # Duration runs from the first hand-out
    assert parse_reply(again.data) == parse_reply(first.data)
    assert d.api.state is st.State.RUNNING
    assert answered(d.send(2, response("req-1", b"x"))).payload == b"x"


def test_error_posts_the_body_to_the_caller_with_a_checked_error_type():
    d = Driver()
    d.init()
    cases = [
        ("Runtime.MyFailure", "Runtime.MyFailure"),
        ("Function.Custom", "Function.Custom"),
        ("xRuntime.Oops", "xRuntime.Oops"),  # the emulator's pattern is not anchored
        ("Function.lower", "Function.Unknown"),
        ("errorString", "Runtime.Unknown"),
        (None, "Runtime.Unknown"),
    ]
    for i, (given, kept) in enumerate(cases):
        rid = f"req-{i}"
        d.call(rid)
        doc = b'{"errorMessage":"boom","errorType":"errorString"}'
        out = d.send(1, error(rid, doc, {"Lambda-Runtime-Function-Error-Type": given} if given else None))
        assert json_reply(out) == (202, {"status": "OK"})
        assert (answered(out).payload, answered(out).error_type) == (doc, kept)
        assert kinds(d.send(1, NEXT)) == []


def test_error_cause_content_type_drops_the_cause():
    d = Driver()
    d.init()
    d.call("r")
    body = json.dumps({"errorMessage": "m", "errorType": "T", "stackTrace": ["a"], "errorCause": {"paths": []}}).encode()
    out = d.send(1, error("r", body, {"Content-Type": ERROR_CAUSE_CONTENT_TYPE}))
    assert json.loads(answered(out).payload) == {"errorMessage": "m", "errorType": "T", "stackTrace": ["a"]}
    d.send(1, NEXT)
    d.call("s")
    out = d.send(1, error("s", b"not json", {"Content-Type": ERROR_CAUSE_CONTENT_TYPE}))
    assert answered(out).payload == b'"Invalid error body"'


def test_init_error_before_next_fails_init_and_next_is_then_refused():
    d = Driver()
    out = d.send(
        1,
        post(
            "/2018-06-01/runtime/init/error",
            b'{"errorMessage":"no config","errorType":"Runtime.Cfg"}',
            {"Lambda-Runtime-Function-Error-Type": "Runtime.Cfg"},
        ),
    )
    assert json_reply(out) == (202, {"status": "OK"})
    failed = [o for o in out if isinstance(o, InitFailed)][0]
    assert (failed.error_type, json.loads(failed.payload)["errorMessage"]) == ("Runtime.Cfg", "no config")
    assert json_reply(d.send(1, NEXT)) == (
        403,
        {
            "errorMessage": "State transition from InitError to Ready failed for runtime. Error: State transition is not allowed",
            "errorType": "InvalidStateTransition",
        },
    )
    assert json_reply(d.send(1, post("/2018-06-01/runtime/init/error", b"{}")))[0] == 403
    with pytest.raises(RuntimeError):
        d.api.invoke(st.Invocation("r", b"", 1, "a", "t"))


def test_init_error_after_init_is_an_invalid_state_transition():
    d = Driver()
    d.init()
    assert json_reply(d.send(2, post("/2018-06-01/runtime/init/error", b"{}"))) == (
        403,
        {
            "errorMessage": "State transition from Ready to InitError failed for runtime. Error: State transition is not allowed",
            "errorType": "InvalidStateTransition",
        },
    )
    d.call("r")
    msg = json_reply(d.send(2, post("/2018-06-01/runtime/init/error", b"{}")))[1]["errorMessage"]
    assert msg.startswith("State transition from Running to InitError")


def test_response_over_six_mb_declared_is_413_and_the_caller_gets_response_size_too_large():
    d = Driver()
    d.init()
    d.call("r")
    big = b"x" * (st.MAX_RESPONSE + 1)
    request = response("r", big)
    head, body = request[: request.index(b"\r\n\r\n") + 4], request[request.index(b"\r\n\r\n") + 4 :]
    out = d.send(1, head)  # the caller learns from the declared length alone
    assert answered(out).error_type == "Function.ResponseSizeTooLarge"
    assert json.loads(answered(out).payload) == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
    assert d.api.current is None
    assert json_reply(d.send(1, body)) == (
        413,
        {"errorMessage": "Exceeded maximum allowed payload size (6291556 bytes).", "errorType": "RequestEntityTooLarge"},
    )
    assert d.api.state is st.State.RESPONSE_SENT
    d.send(1, NEXT)
    d.call("s")  # the environment goes on


def test_exactly_the_limit_is_accepted_and_a_chunked_body_crossing_it_is_refused():
    d = Driver()
    d.init()
    d.call("r")
    out = d.send(1, response("r", b"y" * st.MAX_RESPONSE))
    assert len(answered(out).payload) == st.MAX_RESPONSE
    d.send(1, NEXT)
    d.call("s")
    out = d.send(1, chunked("/2018-06-01/runtime/invocation/s/response", [b"z" * 4_000_000] * 2, {}, {}))
    assert answered(out).error_type == "Function.ResponseSizeTooLarge"
    assert json_reply(out)[0] == 413


def test_error_body_over_the_limit_is_413_and_the_call_stays_open():
    d = Driver(max_error_body=100)
    d.init()
    d.call("r")
    out = d.send(1, error("r", b"e" * 101))
    assert json_reply(out)[0] == 413 and not any(isinstance(o, Answered) for o in out)
    assert d.api.state is st.State.RUNNING
    assert answered(d.send(1, error("r", b"short"))).payload == b"short"


def test_streaming_response_with_error_trailers():
    d = Driver()
    d.init()
    d.call("r")
    body = base64.b64encode(b'{"errorMessage":"mid-stream","errorType":"Stream.Broke"}').decode()
    out = d.send(
        1,
        chunked(
            "/2018-06-01/runtime/invocation/r/response",
            [b"part1", b"part2"],
            {"Lambda-Runtime-Function-Error-Type": "Function.StreamBroke", "Lambda-Runtime-Function-Error-Body": body},
            {"Lambda-Runtime-Function-Response-Mode": "streaming"},
        ),
    )
    assert [o.data for o in out if isinstance(o, StreamData)] == [b"part1", b"part2"]
    assert json_reply(out)[0] == 202
    result = answered(out)
    assert result.error_type == "Function.StreamBroke" and json.loads(result.payload)["errorMessage"] == "mid-stream"


def test_streaming_response_without_error_is_the_concatenated_body():
    d = Driver()
    d.init()
    d.call("r")
    out = d.send(
        1, chunked("/2018-06-01/runtime/invocation/r/response", [b"a", b"bc"], {}, {"Lambda-Runtime-Function-Response-Mode": "streaming"})
    )
    assert (answered(out).payload, answered(out).error_type) == (b"abc", None)


def test_an_unknown_response_mode_is_refused_and_fails_the_call():
    d = Driver()
    d.init()
    d.call("r")
    out = d.send(1, response("r", b"{}", {"Lambda-Runtime-Function-Response-Mode": "Buffered"}))
    assert json_reply(out) == (400, {"errorMessage": "Invalid function response mode", "errorType": "InvalidFunctionResponseMode"})
    assert answered(out).error_type == "Runtime.InvalidResponseModeHeader"
    assert kinds(d.send(1, NEXT)) == []


def test_a_connection_lost_mid_response_is_a_truncated_response():
    d = Driver()
    d.init()
    d.call("r")
    request = response("r", b"0123456789")
    assert d.send(1, request[:-4]) == []
    out = d.api.closed(1)
    assert answered(out).error_type == "Runtime.TruncatedResponse"
    assert d.api.state is st.State.RESPONSE_SENT


def test_a_connection_lost_while_parked_leaves_the_call_for_the_next_next():
    d = Driver()
    d.init(1)
    d.api.closed(1)
    assert d.api.invoke(st.Invocation("r", b"1", 1, "a", "t")) == []
    out = d.send(2, NEXT)
    assert out[0].conn == 2 and out[0].delivers == "r"


def test_parked_nexts_are_served_oldest_first():
    d = Driver()
    d.init(1)
    assert d.send(2, NEXT) == [] and d.send(3, NEXT) == []
    assert d.call("a").conn == 1
    d.send(4, response("a"))
    assert d.call("b").conn == 2


def test_not_found_wrong_method_and_ping():
    d = Driver()
    status, headers, body = parse_reply(only_send(d.send(1, b"GET /2018-06-01/runtime/nothing HTTP/1.1\r\n\r\n")).data)
    assert (status, body) == (404, b"404 page not found\n")
    for request in (
        b"POST /2018-06-01/runtime/invocation/next HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        b"GET /2018-06-01/runtime/invocation/r/response HTTP/1.1\r\n\r\n",
        b"PUT /2018-06-01/runtime/init/error HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    ):
        assert parse_reply(only_send(d.send(1, request)).data)[0] == 405
    assert parse_reply(only_send(d.send(1, b"GET /2018-06-01/ping HTTP/1.1\r\n\r\n")).data)[2] == b"pong"
    assert d.api.state is st.State.STARTED


def test_http_1_0_closes_after_the_reply():
    d = Driver()
    out = d.send(1, b"GET /2018-06-01/ping HTTP/1.0\r\n\r\n")
    assert only_send(out).close and b"Connection: close" in out[0].data
    d2 = Driver()
    assert kinds(d2.send(1, b"GET /2018-06-01/runtime/invocation/next HTTP/1.0\r\n\r\n")) == ["InitDone"]
    assert d2.call("r").close


def test_a_body_sent_on_and_on_past_its_limit_closes_the_connection():
    d = Driver(max_error_body=10, max_drain=1000)
    d.init()
    d.call("r")
    head = b"POST /2018-06-01/runtime/invocation/r/error HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert d.send(1, head) == []
    out = d.send(1, b"400\r\n" + b"e" * 0x400 + b"\r\n")
    assert kinds(out) == ["Close"]
    assert d.api.state is st.State.RUNNING  # that error never arrived


def test_pipelined_request_behind_a_parked_next_is_a_programming_error():
    d = Driver()
    with pytest.raises(RuntimeError):
        d.send(1, NEXT + NEXT)


def test_reader_takes_bytes_one_at_a_time():
    data = chunked("/p", [b"hello", b"world"], {"X-T": "v"}, {}) + response("r", b"abc")
    reader = wire.RequestReader()
    events = []
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        while (e := reader.next_event()) is not wire.NEED_DATA:
            events.append(e)
    assert [type(e).__name__ for e in events][:1] == ["Request"]
    assert b"".join(e.data for e in events if isinstance(e, wire.Data)) == b"helloworldabc"
    ends = [e for e in events if isinstance(e, wire.End)]
    assert [e.trailers for e in ends] == [[("x-t", "v")], []]
    assert reader.idle


def test_reader_on_garbage_gives_events_or_protocol_error_only():
    rng = random.Random(13)
    alphabet = [
        b"\r\n",
        b"GET ",
        b"POST ",
        b" HTTP/1.1",
        b"/2018-06-01/runtime/invocation/next",
        b"Content-Length: 3",
        b"Transfer-Encoding: chunked",
        b"0",
        b"ff",
        b"x",
        b":",
        b"\x00",
        b" ",
    ]
    for _ in range(2000):
        data = b"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
        reader = wire.RequestReader()
        reader.feed(data)
        try:
            for _ in range(200):
                event = reader.next_event()
                if event is wire.NEED_DATA:
                    break
                assert isinstance(event, (wire.Request, wire.Data, wire.End))
        except ProtocolError as exc:
            assert 400 <= exc.status < 600


def test_header_injection_through_a_client_context_is_impossible():
    with pytest.raises(ValueError):
        wire.event_reply("r", b"{}", 1, "arn", "t", client_context='{"a":\r\n1}')


def test_reader_reuses_header_fields_but_checks_each_request_line():
    fields = b"Host: h\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n0\r\n\r\n"
    reader = wire.RequestReader()
    heads = []
    for line in (b"POST /a HTTP/1.1\r\n", b"POST /b HTTP/1.0\r\n", b"POST /c HTTP/1.1\r\n"):
        reader.feed(line + fields)
        event = reader.next_event()
        assert isinstance(event, wire.Whole) and event.parts == []
        heads.append(event.head)
    assert [(h.target, h.keep_alive, h.chunked, h.header("content-type")) for h in heads] == [
        ("/a", True, True, "application/json"),
        ("/b", False, True, "application/json"),
        ("/c", True, True, "application/json"),
    ]
    reader.feed(b"POST bad-target HTTP/1.1\r\n" + fields)
    with pytest.raises(ProtocolError):
        reader.next_event()
    closing = wire.RequestReader()
    for target in (b"/x", b"/y"):
        closing.feed(b"POST " + target + b" HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        assert closing.next_event().head.keep_alive is False
