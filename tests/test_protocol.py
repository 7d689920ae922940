"""The worker channel's framing, on its own (sans-IO): what a frame from
the untrusted side may be."""

from __future__ import annotations

import struct

import pytest

from lambdalet.runtime import protocol
from lambdalet.runtime.protocol import FrameReader, FrameTooLarge, Result


def test_a_frame_too_large_is_refused_from_its_header_alone():
    reader = FrameReader("from_worker")
    with pytest.raises(FrameTooLarge) as info:
        reader.feed(struct.pack("<I", protocol.MAX_FRAME_FROM_WORKER + 1))
    assert info.value.length == protocol.MAX_FRAME_FROM_WORKER + 1


def test_the_largest_answer_an_honest_worker_sends_fits():
    marks = [(i * 256, 1_800_000_000_000 + i) for i in range(4096)]  # as many as a worker keeps
    frame = protocol.encode(Result("r" * 36, b"x" * protocol.MAX_RESPONSE, "Some.ErrorType", b"y" * protocol.MAX_CALL_LOG, marks))
    assert len(frame) - 4 <= protocol.MAX_FRAME_FROM_WORKER
    reader = FrameReader("from_worker")
    got = []
    for start in range(0, len(frame), 65536):
        got += reader.feed(frame[start : start + 65536])
    assert len(got) == 1 and len(got[0].payload) == protocol.MAX_RESPONSE


def test_the_gateway_may_send_more_than_a_worker_may_answer():
    # A function URL's 6 MB body arrives as an ~8 MB base64 event.
    big = protocol.encode(protocol.Invoke("r", b"x" * (9 << 20), 0, "arn"))
    assert len(FrameReader("to_worker").feed(big)) == 1
    with pytest.raises(FrameTooLarge):
        FrameReader("from_worker").feed(big[:4])


def test_a_result_carries_no_figure_to_bill():
    # (log_marks are when lines were written: they stamp log lines, never a bill.)
    assert set(Result.__struct_fields__) == {"request_id", "payload", "error_type", "log", "log_marks"}
    assert set(protocol.InitOk.__struct_fields__) == {"log", "log_marks"}
