"""The event-stream encoder (gateway/api/event_stream.py) read back by
botocore's own parser, as boto3 reads InvokeWithResponseStream."""

from __future__ import annotations

import json

from botocore.eventstream import EventStreamBuffer

from lambdalet.gateway.api import event_stream


def _parse(data: bytes) -> list:
    buf = EventStreamBuffer()
    buf.add_data(data)
    return list(buf)


def test_payload_chunks_of_every_size_parse_back():
    for size in (0, 1, 255, 65536, 1 << 20):
        payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        [msg] = _parse(event_stream.payload_chunk(payload))
        assert msg.payload == payload
        assert msg.headers == {":event-type": "PayloadChunk", ":content-type": "application/octet-stream", ":message-type": "event"}


def test_invoke_complete_and_a_run_of_messages():
    data = b"".join(
        [
            event_stream.payload_chunk(b"a"),
            event_stream.payload_chunk(b"bc"),
            event_stream.invoke_complete("Unhandled", '{"errorType":"E"}', "bG9n"),
        ]
    )
    msgs = _parse(data)
    assert [m.headers[":event-type"] for m in msgs] == ["PayloadChunk", "PayloadChunk", "InvokeComplete"]
    assert json.loads(msgs[-1].payload) == {"ErrorCode": "Unhandled", "ErrorDetails": '{"errorType":"E"}', "LogResult": "bG9n"}
    assert json.loads(_parse(event_stream.invoke_complete())[0].payload) == {}


def test_a_corrupted_message_is_refused_by_the_parser():
    data = bytearray(event_stream.payload_chunk(b"hello"))
    data[-6] ^= 0xFF  # inside the payload: the message CRC no longer matches
    try:
        _parse(bytes(data))
    except Exception as exc:  # botocore's ChecksumMismatch
        assert "Checksum" in type(exc).__name__
    else:
        raise AssertionError("a corrupted message parsed")
