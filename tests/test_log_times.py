"""Each log line is stamped with the time it was written, not the time the
call began; what the function says about times is clamped to the call."""

from __future__ import annotations

import datetime
import json
import random

import pytest
from test_cli import run_cli

from lambdalet.gateway.metering import log_lines as logs
from lambdalet.gateway.metering.log_records import CallLog, split_events


def _stamps(server, name: str) -> dict[str, int]:
    """message -> epoch ms, from `lambdalet logs` as a user reads it."""
    out = {}
    for line in run_cli(server, "logs", name).stdout.splitlines():
        stamp, _stream, message = line.split(" ", 2)
        when = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
        out[message] = round(when.timestamp() * 1000)
    return out


HANDLER = """
import logging, os, sys, time
print('imported')
def handler(event, context):
    print('first')
    time.sleep(event['pause'])
    print('second', flush=True)
    sys.stderr.write('third\\n')
    logging.getLogger().warning('fourth')
    time.sleep(event['pause'])
    sys.stdout.buffer.write(b'fifth\\n')  # buffered: it reaches the file when the call ends
    return 1
"""


def test_each_line_has_the_time_it_was_written(server, lam, deploy):
    name = deploy({"app.py": HANDLER}, Timeout=10)
    lam.invoke(FunctionName=name, Payload=json.dumps({"pause": 0.6}).encode())
    stamps = _stamps(server, name)
    warning = next(m for m in stamps if m.endswith("fourth"))
    start = next(m for m in stamps if m.startswith("START RequestId:"))
    report = next(m for m in stamps if m.startswith("REPORT RequestId:"))
    # The order a reader sees is the order of writing, and the pauses between
    # prints show: 0.6 s of sleep between first and second (some slack below
    # for the millisecond rounding, none above needed).
    assert stamps["imported"] <= stamps[start] <= stamps["first"]
    assert stamps["second"] - stamps["first"] >= 590
    assert stamps["first"] <= stamps["second"] <= stamps["third"] <= stamps[warning]
    assert stamps["fifth"] - stamps[warning] >= 590
    assert stamps["fifth"] <= stamps[report]


def test_since_finds_the_lines_written_after_it(server, lam, deploy):
    name = deploy({"app.py": HANDLER}, Timeout=10)
    lam.invoke(FunctionName=name, Payload=json.dumps({"pause": 1.0}).encode())
    stamps = _stamps(server, name)
    # Between "first" and "second": a user asking for what came after sees
    # the second half of the call, and not its first line.
    since = stamps["first"] + 500
    after = run_cli(
        server, "logs", name, "--since", datetime.datetime.fromtimestamp(since / 1000, datetime.timezone.utc).isoformat()
    ).stdout
    assert "second" in after and "fifth" in after and " first" not in after and "imported" not in after


FORGER = """
import sys
from lambdalet.runtime import worker
def handler(event, context):
    # The function owns the worker's process: it can write any marks at all.
    capture = next(o for o in __import__('gc').get_objects() if isinstance(o, worker._LogCapture))
    print('before')
    capture.marks.extend([(1, 0), (10**12, 10**18), (-5, -5), (0, 2**62)] * 3000)
    print('after')
    return 1
"""


def test_forged_marks_stay_within_the_call(server, lam, deploy):
    name = deploy({"app.py": FORGER}, Timeout=10)
    resp = lam.invoke(FunctionName=name)
    assert resp["Payload"].read() == b"1"
    stamps = _stamps(server, name)
    start = next(v for m, v in stamps.items() if m.startswith("START RequestId:"))
    report = next(v for m, v in stamps.items() if m.startswith("REPORT RequestId:"))
    assert "before" in stamps and "after" in stamps
    # INIT_START is the platform's, stamped when the init began (just before the call).
    init = next(v for m, v in stamps.items() if m.startswith("INIT_START"))
    assert init <= start
    assert all(start <= v <= report for m, v in stamps.items() if not m.startswith("INIT_START")), stamps


def _reference(log: bytes) -> list[str]:
    return log.decode("utf-8", errors="replace").splitlines()


@pytest.mark.parametrize("seed", range(40))
def test_splitting_by_marks_keeps_the_lines_of_the_whole_text(seed):
    rng = random.Random(seed)
    alphabet = [b"a", b"\n", b"\r", b"\r\n", b"\xc3\xa9", b"\xe2\x82", b"\x85", b"\xc2\x85", b"\x0b", b"\xe2\x80\xa8", b" "]
    log = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
    marks = sorted({(rng.randrange(0, len(log) + 3), 0) for _ in range(rng.randrange(0, 6))})
    marks = [(off, 1000 + i) for i, (off, _) in enumerate(marks)]
    if rng.random() < 0.3:
        marks.append((rng.randrange(0, len(log) + 1), 5))  # out of order
    call = CallLog(log_group="g", log_stream="s", request_id="r", started_ns=1000 * 10**6, ended_ns=2000 * 10**6, log=log, marks=marks)
    events = split_events(call)
    assert [m for _, m in events] == _reference(log)
    stamps = [t for t, _ in events]
    assert stamps == sorted(stamps) and all(1000 <= t <= 2000 for t in stamps)


def test_marks_place_each_line_and_the_platform_lines():
    output = b"one\ntwo\nthree\n"
    # "one" by 1100, "two" by 1500; "three" has no mark after it.
    log = logs.wrap_call("r", "$LATEST", b"init\n", output, duration_ns=1, memory_mb=128, max_memory_mb=1, init_ns=None)
    head = logs.call_frame("r", "$LATEST", duration_ns=1, memory_mb=128, max_memory_mb=1, init_ns=None).head()
    marks = logs.call_marks(b"init\n", [(5, 1010)], head, output, [(4, 1100), (8, 1500), (999, 1600), (2, 1700)], 1050)
    call = CallLog(log_group="g", log_stream="s", request_id="r", started_ns=1000 * 10**6, ended_ns=1900 * 10**6, log=log, marks=marks)
    assert split_events(call) == [
        (1010, "init"),
        (1050, "START RequestId: r Version: $LATEST"),
        (1100, "one"),
        (1500, "two"),
        (1900, "three"),
        (1900, "END RequestId: r"),
        (1900, "REPORT RequestId: r\tDuration: 0.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 1 MB\t"),
    ]
    # A record journaled before marks existed is stamped as it always was.
    old = CallLog(log_group="g", log_stream="s", request_id="r", started_ns=1000 * 10**6, ended_ns=1900 * 10**6, log=log)
    assert [t for t, _ in split_events(old)] == [1000] * 5 + [1900] * 2
