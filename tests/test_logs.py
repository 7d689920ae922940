"""Log lines as AWS writes them, stored per group and stream, and read back
with `lambdalet logs`."""

from __future__ import annotations

import base64
import json
import re
import time

import msgspec
import pytest
import requests
from test_cli import run_cli

from lambdalet.gateway.metering import log_lines as logs
from lambdalet.gateway.metering.log_records import CallLog, framed, split_events, split_framed
from lambdalet.gateway.metering.logstore import LogStore

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
REPORT_RE = re.compile(
    rf"^REPORT RequestId: ({UUID})\tDuration: \d+\.\d\d ms\tBilled Duration: (\d+) ms\t"
    rf"Memory Size: (\d+) MB\tMax Memory Used: \d+ MB\t(Init Duration: \d+\.\d\d ms\t)?$"
)
STREAM_RE = re.compile(r"^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$")


def test_report_line_is_aws_format_to_the_character():
    line = logs.report_line("8f507cfc-xmpl-4697-b07a-ac58fc914c95", 12_340_000, 128, 41)
    assert (
        line
        == b"REPORT RequestId: 8f507cfc-xmpl-4697-b07a-ac58fc914c95\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\tMax Memory Used: 41 MB\t\n"
    )
    cold = logs.report_line("r", 12_340_000, 128, 41, init_ns=130_490_000, granularity_ms=100)
    assert (
        cold
        == b"REPORT RequestId: r\tDuration: 12.34 ms\tBilled Duration: 100 ms\tMemory Size: 128 MB\tMax Memory Used: 41 MB\tInit Duration: 130.49 ms\t\n"
    )


def test_json_platform_events():
    start = json.loads(logs.platform_start("r", "$LATEST"))
    assert start["type"] == "platform.start" and start["record"] == {"requestId": "r", "version": "$LATEST"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", start["time"])
    report = json.loads(
        logs.platform_report("r", 12_340_000, 128, 41, init_ns=5_000_000, granularity_ms=100, error_type="Sandbox.Timedout")
    )
    assert report["type"] == "platform.report"
    assert report["record"] == {
        "requestId": "r",
        "metrics": {"durationMs": 12.34, "billedDurationMs": 100, "memorySizeMB": 128, "maxMemoryUsedMB": 41, "initDurationMs": 5.0},
        "status": "timeout",
        "errorType": "Sandbox.Timedout",
    }
    quiet = logs.wrap_call(
        "r",
        "$LATEST",
        b"",
        b"out\n",
        duration_ns=1,
        memory_mb=128,
        max_memory_mb=1,
        init_ns=None,
        logging_config={"LogFormat": "JSON", "SystemLogLevel": "WARN"},
    )
    assert quiet == b"out\n"


def test_report_lines_through_a_real_server(lam, deploy):
    name = deploy({"app.py": "def handler(e, c):\n    print('from the handler')\n    return 1\n"}, MemorySize=192)
    tails = []
    for _ in range(2):
        resp = lam.invoke(FunctionName=name, LogType="Tail")
        tails.append(base64.b64decode(resp["LogResult"]).decode())
    for i, tail in enumerate(tails):
        lines = tail.splitlines()
        # The cold start's init comes first, naming the interpreter that runs.
        assert lines[0].startswith("INIT_START Runtime Version: python:3.") == (i == 0), lines[0]
        lines = lines[1:] if i == 0 else lines
        assert lines[0].startswith("START RequestId: ") and lines[0].endswith(" Version: $LATEST")
        assert "from the handler" in lines
        assert re.fullmatch(rf"END RequestId: {UUID}", lines[-2])
        m = REPORT_RE.match(lines[-1])
        assert m, repr(lines[-1])
        assert m.group(3) == "192"
        # Init Duration on the cold start only.
        assert (m.group(4) is not None) == (i == 0), lines[-1]


def test_json_log_format(lam, deploy):
    src = (
        "import logging\nlog = logging.getLogger('app')\n"
        "def handler(e, c):\n    print('plain')\n    log.info('hi %s', 'there', extra={'k': 1})\n    log.debug('hidden')\n"
        "    if e.get('fail'):\n        raise ValueError('boom')\n    return 1\n"
    )
    name = deploy({"app.py": src}, LoggingConfig={"LogFormat": "JSON"})
    assert lam.get_function_configuration(FunctionName=name)["LoggingConfig"]["LogFormat"] == "JSON"
    resp = lam.invoke(FunctionName=name, LogType="Tail")
    lines = base64.b64decode(resp["LogResult"]).decode().splitlines()
    init = json.loads(lines.pop(0))
    assert init["type"] == "platform.initStart" and init["record"]["runtimeVersion"].startswith("python:3.")
    assert (init["record"]["phase"], init["record"]["initializationType"]) == ("init", "on-demand")
    start, report = json.loads(lines[0]), json.loads(lines[-1])
    assert start["type"] == "platform.start" and start["record"]["requestId"] == resp["ResponseMetadata"]["RequestId"]
    assert report["type"] == "platform.report" and report["record"]["status"] == "success"
    assert set(report["record"]["metrics"]) >= {"durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB", "initDurationMs"}
    assert "plain" in lines  # print() stays plain text, as on AWS
    records = [json.loads(line) for line in lines[1:-1] if line.startswith("{")]
    (info,) = records
    assert {k: info[k] for k in ("level", "message", "logger", "requestId", "k")} == {
        "level": "INFO",
        "message": "hi there",
        "logger": "app",
        "requestId": start["record"]["requestId"],
        "k": 1,
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["timestamp"])
    failed = lam.invoke(FunctionName=name, Payload=b'{"fail": true}', LogType="Tail")
    lines = base64.b64decode(failed["LogResult"]).decode().splitlines()
    error = next(json.loads(line) for line in lines if '"log_level"' in line)
    assert (error["errorType"], error["errorMessage"], error["log_level"]) == ("ValueError", "boom", "ERROR")
    report = json.loads(lines[-1])
    assert (report["record"]["status"], report["record"]["errorType"]) == ("error", "ValueError")
    assert "initDurationMs" not in report["record"]["metrics"]


def test_lambdalet_logs_prints_stored_events(server, lam, deploy):
    name = deploy({"app.py": "def handler(e, c):\n    print('needle', e.get('n'))\n    return 1\n"})
    for n in range(3):
        lam.invoke(FunctionName=name, Payload=json.dumps({"n": n}).encode())
    out = run_cli(server, "logs", name).stdout.splitlines()
    assert sum(1 for line in out if " START RequestId: " in line) == 3
    assert sum(1 for line in out if " REPORT RequestId: " in line) == 3
    stamp, stream, _ = out[0].split(" ", 2)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    assert STREAM_RE.match(stream), stream
    filtered = run_cli(server, "logs", name, "--filter", "needle 2").stdout.splitlines()
    assert len(filtered) == 1 and filtered[0].endswith("needle 2")
    assert run_cli(server, "logs", name, "--since", "10m").stdout.splitlines() == out
    never = run_cli(server, "logs", "never-called-fn", check=False)
    assert never.returncode == 1 and never.stdout == "" and "ResourceNotFoundException" in never.stderr
    bad = run_cli(server, "logs", name, "--since", "yesterday-ish", check=False)
    assert bad.returncode == 1 and "--since" in bad.stderr
    # The endpoint behind it is signed like the rest of the API.
    assert requests.get(f"{server.url}/_lambdalet/logs?function={name}", timeout=10).status_code == 403


def _call(i: int, started_ns: int, log: bytes, stream: str = "2026/11/29/[$LATEST]abc") -> CallLog:
    return CallLog(
        log_group="/aws/lambda/f", log_stream=stream, request_id=f"r{i}", started_ns=started_ns, ended_ns=started_ns + 5_000_000, log=log
    )


def test_store_splits_calls_into_events_and_expires_them(tmp_path):
    store = LogStore(tmp_path, retention_days=1)
    try:
        now = time.time_ns()
        old = now - 3 * 86_400 * 10**9
        body = logs.wrap_call(
            "r1", "$LATEST", b"", b"line one\nline two\n", duration_ns=1_000_000, memory_mb=128, max_memory_mb=1, init_ns=None
        )
        assert [t for t, _ in split_events(_call(1, now, body))] == [now // 10**6] * 3 + [(now + 5_000_000) // 10**6] * 2
        store.commit([_call(1, now, body), _call(2, old, b"ancient\n", stream="2026/11/26/[$LATEST]def")])
        assert len(store.events("/aws/lambda/f")) == 6
        assert [e.message for e in store.events("/aws/lambda/f", contains="two")] == ["line two"]
        assert len(store.events("/aws/lambda/f", since_ms=now // 10**6)) == 5
        assert store.streams("/aws/lambda/f") == ["2026/11/26/[$LATEST]def", "2026/11/29/[$LATEST]abc"]
        assert store.expire() == 1
        assert all(e.message != "ancient" for e in store.events("/aws/lambda/f"))
    finally:
        store.close()
    store = LogStore(tmp_path)  # reopened, as it was left
    try:
        assert len(store.events("/aws/lambda/f")) == 5
    finally:
        store.close()


@pytest.mark.parametrize("level", ["WARN", "ERROR"])
def test_system_log_level_above_info_drops_platform_events(level):
    out = logs.wrap_call(
        "r",
        "$LATEST",
        b"",
        b"x\n",
        duration_ns=1,
        memory_mb=128,
        max_memory_mb=1,
        init_ns=None,
        logging_config={"LogFormat": "JSON", "SystemLogLevel": level},
    )
    assert out == b"x\n"


def test_lambdalet_logs_follow_prints_new_calls(server, lam, deploy):
    import os
    import subprocess
    import threading

    from helpers import lambdalet_argv, wait_for

    name = deploy({"app.py": "def handler(e, c):\n    print('follow', e.get('n'))\n    return 1\n"})
    lam.invoke(FunctionName=name, Payload=b'{"n": 1}')
    env = dict(os.environ, LAMBDALET_ENDPOINT=server.url, LAMBDALET_DATA_DIR=str(server.data_dir))
    proc = subprocess.Popen(lambdalet_argv("logs", name, "--follow"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(line.rstrip().endswith("follow 1") for line in list(lines)), timeout=30)
        lam.invoke(FunctionName=name, Payload=b'{"n": 2}')
        wait_for(lambda: any(line.rstrip().endswith("follow 2") for line in list(lines)), timeout=30)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=5)
        proc.stdout.close()
        proc.stderr.close()
    assert sum(1 for line in lines if line.rstrip().endswith("follow 1")) == 1  # printed once, not per poll


def test_pages_cover_what_is_stored_and_follow_goes_on_from_there(tmp_path):
    from lambdalet.gateway.metering.log_records import CallLog
    from lambdalet.gateway.metering.logstore import LogStore

    store = LogStore(tmp_path)
    try:
        store.commit(
            [
                CallLog(
                    log_group="/aws/lambda/f",
                    log_stream="s",
                    request_id=f"r{i}",
                    started_ns=1_000_000 * (i + 1),
                    ended_ns=1_000_000 * (i + 1),
                    log=f"START RequestId: r{i} Version: $LATEST\nline {i}\nEND RequestId: r{i}\n".encode(),
                )
                for i in range(30)
            ]
        )
        first = store.page("/aws/lambda/f", limit=6)
        assert [e.message for e in first.events][:2] == ["START RequestId: r0 Version: $LATEST", "line 0"]
        assert first.next is not None
        upto = first.upto_id
        assert store.events("/aws/lambda/f", after_id=upto) == []  # nothing newer to follow yet
    finally:
        store.close()


OLD_EVENTS_TABLE = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY, log_group TEXT NOT NULL, log_stream TEXT NOT NULL, timestamp_ms INTEGER NOT NULL,
    call_key TEXT NOT NULL, seq INTEGER NOT NULL, message TEXT NOT NULL,
    UNIQUE (call_key, seq)
);
CREATE INDEX events_by_group ON events (log_group, timestamp_ms);
"""


@pytest.mark.parametrize("journal_name", ["calls-journal", "logs-journal"])
@pytest.mark.parametrize("layout", ["new", "old"])
def test_a_replayed_call_adds_no_events_twice(tmp_path, layout, journal_name):
    """Replayed from this version's call journal, or from the log journal an
    earlier version left, into either layout of logs.db."""
    import sqlite3

    from helpers import Books

    from lambdalet.gateway.metering.calls import CallRecord
    from lambdalet.gateway.metering.journal import Journal
    from lambdalet.gateway.metering.ledger import UsageRecord

    if layout == "old":
        # A logs.db made before the unique key led with the timestamp.
        with sqlite3.connect(tmp_path / "logs.db") as db:
            db.executescript(OLD_EVENTS_TABLE)
    now = time.time_ns()
    body = logs.wrap_call("r1", "$LATEST", b"", b"hello\n", duration_ns=1_000_000, memory_mb=128, max_memory_mb=1, init_ns=None)
    calls = [_call(i, now + i * 1_000_000, body) for i in range(3)]
    usage = [
        UsageRecord(
            request_id=c.request_id,
            function="f",
            version="$LATEST",
            architecture="x86_64",
            started_ns=c.started_ns,
            duration_ns=1_000_000,
            init_ns=0,
            billed_ms=1,
            granularity_ms=1,
            memory_mb=128,
            max_memory_mb=1,
            cold=False,
            outcome="success",
        )
        for c in calls
    ]
    books = Books(tmp_path)
    for row, call in zip(usage, calls):
        books.journal.record(row, call)
    books.journal.flush_sync()
    books.close()
    # Killed between the commit and the journal's unlink: the same calls again.
    replay = Journal(tmp_path / journal_name)
    replay.open_next()
    enc = msgspec.msgpack.Encoder()
    for row, call in zip(usage, calls):
        replay.append(enc.encode(CallRecord(row, call) if journal_name == "calls-journal" else call))
    replay.close()
    books = Books(tmp_path)
    try:
        assert books.journal.replayed == 3
        assert len(books.logstore.events("/aws/lambda/f")) == 3 * 4  # START, hello, END, REPORT
        assert len(books.ledger.calls()) == 3
    finally:
        books.close()
    with sqlite3.connect(tmp_path / "logs.db") as db:
        (ddl,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()
    assert ("UNIQUE (timestamp_ms, call_key, seq)" in ddl) == (layout == "new")


def test_a_cap_keeps_the_last_whole_lines_and_counts_what_it_dropped():
    output = b"".join(b"line %05d\n" % i for i in range(1000))  # 11 bytes a line
    kept, dropped = logs.cap(output, 100)
    assert kept == b"".join(b"line %05d\n" % i for i in range(991, 1000))  # 99 bytes, from a line's start
    assert dropped == len(output) - len(kept)
    assert logs.cap(b"short\n", 100) == (b"short\n", 0)


def test_a_dropped_notice_in_either_log_format():
    text = logs.dropped_notice("r1", 5000, 1 << 20)
    assert re.fullmatch(
        rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z RequestId: r1 Warning: 5000 bytes of log output were dropped: "
        rb"at most 1048576 bytes are kept per invocation\n",
        text,
    ), text
    assert b"RequestId" not in logs.dropped_notice(None, 7, 1 << 20) and b"per init phase" in logs.dropped_notice(None, 7, 1 << 20)
    event = json.loads(logs.dropped_notice("r1", 5000, 1 << 20, {"LogFormat": "JSON"}))
    assert event["type"] == "platform.logsDropped"
    assert event["record"] == {
        "reason": "5000 bytes of log output were dropped: at most 1048576 bytes are kept per invocation",
        "droppedBytes": 5000,
    }


def test_capped_output_keeps_its_marks_in_step():
    output = b"".join(b"line %05d\n" % i for i in range(1000))  # 11 bytes a line
    marks = [(11 * (i + 1), 1000 + i) for i in range(1000)]  # each line marked as it ended
    log, moved = logs.capped(output, marks, 100, "r1")
    assert log.startswith(b"20") and b"RequestId: r1 Warning: 10901 bytes of log output were dropped" in log
    # Each kept line's mark still points at its end.
    for offset, ms in moved:
        assert log[:offset].endswith(b"line %05d\n" % (ms - 1000)), (offset, ms)
    assert [ms for _, ms in moved] == list(range(1991, 2000))
    assert logs.capped(b"short\n", [(6, 5)], 100, "r1") == (b"short\n", [(6, 5)])
    # Bytes dropped earlier (a killed call's memfd read) are counted in the notice too.
    log, _ = logs.capped(b"tail\n", [], 100, None, dropped=7)
    assert b"7 bytes of log output were dropped: at most 100 bytes are kept per init phase\n" in log and log.endswith(b"tail\n")


def _framed_call(
    i: int,
    started_ms: int,
    *,
    init: bytes = b"",
    output: bytes = b"",
    json_format: bool = False,
    error_type: str | None = None,
    cold: bool = False,
) -> CallLog:
    """A call's log as the pool journals it: text, marks and frame."""
    config = {"LogFormat": "JSON"} if json_format else {}
    frame = logs.call_frame(
        f"r{i}",
        "$LATEST",
        duration_ns=1_234_567 * (i + 1),
        memory_mb=128,
        max_memory_mb=7,
        init_ns=250_000_000 if cold else None,
        granularity_ms=1,
        logging_config=config,
        error_type=error_type,
        at_ms=started_ms + 3,
    )
    frame = msgspec.structs.replace(frame, head_at=len(init))
    head, tail = frame.head(), frame.tail()
    log = init + head + output + tail
    marks = logs.call_marks(
        init, [(len(init), started_ms)] if init else [], head, output, [(len(output), started_ms + 2)] if output else [], started_ms + 1
    )
    return CallLog(
        log_group="/aws/lambda/f",
        log_stream="s",
        request_id=f"r{i}",
        started_ns=started_ms * 1_000_000,
        ended_ns=(started_ms + 5) * 1_000_000,
        log=log,
        marks=marks,
        frame=frame,
    )


def test_platform_lines_are_kept_as_figures_and_read_back_to_the_byte(tmp_path):
    calls = [
        _framed_call(0, 1000, init=b"INIT_START Runtime Version: python:3.11.7\nimporting\n", output=b"hello\n", cold=True),
        _framed_call(1, 2000),  # printed nothing: three lines, no row of text
        _framed_call(2, 3000, output=b"a\nb\n", error_type="ValueError"),
        _framed_call(3, 4000, output=b'{"level":"INFO"}\n', json_format=True, cold=True),
        _framed_call(4, 5000, json_format=True, error_type="Sandbox.Timedout"),
    ]
    expected = [(ts, line) for call in calls for ts, line in split_events(call)]
    store = LogStore(tmp_path)
    try:
        store.commit(calls)
        stored_text = [m for (m,) in store.query("SELECT message FROM events")]
        assert stored_text == ["INIT_START Runtime Version: python:3.11.7", "importing", "hello", "a", "b", '{"level":"INFO"}']
        assert store.query("SELECT count(*) FROM frames") == [(5,)]
        # Read back in time order and in stored order, whole or a page at a
        # time, they are the lines the calls logged, with their stamps.
        page = store.page("/aws/lambda/f")
        assert [(e.timestamp_ms, e.message) for e in page.events] == expected and page.next is None
        assert [(e.timestamp_ms, e.message) for e in store.events("/aws/lambda/f")] == expected
        paged, after = [], None
        while True:
            page = store.page("/aws/lambda/f", after=after, limit=2)
            paged += [(e.timestamp_ms, e.message) for e in page.events]
            if page.next is None:
                break
            after = page.next
        assert paged == expected
        # Following from any line goes on with the next one.
        ids = [e.id for e in store.events("/aws/lambda/f")]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert [e.message for e in store.events("/aws/lambda/f", after_id=ids[5], limit=2)] == [expected[6][1], expected[7][1]]
        # Filters and --since see the made-again lines as any other.
        reports = store.page("/aws/lambda/f", contains="REPORT RequestId").events
        assert [e.message for e in reports] == [line for _, line in expected if line.startswith("REPORT RequestId")]
        assert len(reports) == 3
        assert [e.message for e in store.events("/aws/lambda/f", contains="platform.report")] == [
            line for _, line in expected if "platform.report" in line
        ]
        assert (
            store.page("/aws/lambda/f", since_ms=5000)
            .events[0]
            .message.startswith('{"time":"1970-01-01T00:00:05.003Z","type":"platform.start"')
        )
        assert store.streams("/aws/lambda/f") == ["s"]
    finally:
        store.close()


def test_split_framed_is_split_events_and_framed_in_one():
    """The log store's shortcut for a call that printed nothing gives what
    split_events and framed give, and only takes it when it can."""
    plain = _framed_call(1, 2000)
    calls = [
        plain,
        _framed_call(0, 1000, init=b"INIT_START Runtime Version: python:3.11.7\n", output=b"hello\n", cold=True),
        _framed_call(2, 3000, output=b"a\nb\n", error_type="ValueError"),
        _framed_call(3, 4000, json_format=True),
        _framed_call(4, 5000, cold=True),
        # START's mark outside the call's span: clamped alike.
        msgspec.structs.replace(plain, marks=[(plain.marks[0][0], 10)]),
        msgspec.structs.replace(plain, marks=[(plain.marks[0][0], 10**9)]),
        # A mark elsewhere, two marks, none: the long way.
        msgspec.structs.replace(plain, marks=[(3, 2001)]),
        msgspec.structs.replace(plain, marks=[*plain.marks, (len(plain.log), 2004)]),
        msgspec.structs.replace(plain, marks=[]),
        # A log that is not its frame's lines (as a bug would make it).
        msgspec.structs.replace(plain, log=plain.log.replace(b"START RequestId: r1", b"START RequestId: rX")),
    ]
    # Ids with bytes that split lines differently for splitlines() than
    # for a split on newlines, or that do not decode.
    for odd in ("r\x1c1", "r\x0b1", "r\u20281", "r\r1"):
        frame = msgspec.structs.replace(plain.frame, request_id=odd)
        head, tail = frame.head(), frame.tail()
        calls.append(msgspec.structs.replace(plain, frame=frame, log=head + tail, marks=[(len(head), 2001)]))
    for call in calls:
        lines = split_events(call)
        assert split_framed(call) == (lines, framed(call, lines))
    assert split_framed(plain)[1] == (0, 1)


def test_a_frame_that_does_not_make_its_lines_again_keeps_them_as_text(tmp_path):
    call = _framed_call(0, 1000, output=b"hello\n")
    # A log whose START was changed after the frame was taken (as a bug would).
    tampered = msgspec.structs.replace(call, log=call.log.replace(b"START RequestId: r0", b"START RequestId: rX"))
    store = LogStore(tmp_path)
    try:
        store.commit([tampered])
        assert store.query("SELECT count(*) FROM frames") == [(0,)]
        assert [e.message for e in store.events("/aws/lambda/f")] == [line for _, line in split_events(tampered)]
    finally:
        store.close()


@pytest.mark.parametrize("config", [{}, {"LogFormat": "JSON"}], ids=["text", "json"])
def test_the_stored_log_is_what_the_call_logged_without_platform_text_rows(server, lam, deploy, config):
    import contextlib
    import sqlite3

    from helpers import signed_get

    extra = {"LoggingConfig": config} if config else {}
    name = deploy({"app.py": "print('at import')\ndef handler(e, c):\n    print('in call', e)\n    return e\n"}, **extra)
    tails = []
    for i in range(3):
        resp = lam.invoke(FunctionName=name, Payload=json.dumps(i).encode(), LogType="Tail")
        tails.append(base64.b64decode(resp["LogResult"]).decode())
    r = signed_get(server, f"/_lambdalet/logs?function={name}")
    assert r.status_code == 200
    stored = "".join(e["message"] + "\n" for e in r.json()["events"])
    assert stored == "".join(tails)  # to the byte: START, END, REPORT (or their JSON events) made again
    with contextlib.closing(sqlite3.connect(f"file:{server.data_dir / 'logs.db'}?mode=ro", uri=True)) as db:
        texts = [m for (m,) in db.execute("SELECT message FROM events WHERE log_group = ?", (f"/aws/lambda/{name}",))]
        frames = db.execute("SELECT count(*) FROM frames WHERE log_group = ?", (f"/aws/lambda/{name}",)).fetchone()[0]
    assert frames == 3
    assert not [
        t
        for t in texts
        if t.startswith(("START RequestId", "END RequestId", "REPORT RequestId")) or '"type":"platform.' in t and "initStart" not in t
    ], texts


def test_the_log_store_keeps_within_its_cap_dropping_the_oldest_calls_whole(tmp_path):
    cap = 256 * 1024
    store = LogStore(tmp_path, max_bytes=cap)
    try:
        for batch in range(30):
            store.commit(
                [
                    _framed_call(batch * 100 + i, 1000 * (batch * 100 + i + 1), output=b"a line of some length, as functions print\n" * 3)
                    for i in range(100)
                ]
            )
            store.trim()
        assert store.bytes_in_use() <= cap
        lines = store.events("/aws/lambda/f")
        # The newest calls are all there, the oldest are gone, and no call is
        # left in part: the store starts with a call's START.
        assert lines[-1].message.startswith("REPORT RequestId: r2999\t")
        assert "START RequestId: r0 Version: $LATEST" not in {e.message for e in lines}
        assert lines[0].message.startswith("START RequestId: ")
        kept = {e.message.split()[2] for e in lines if e.message.startswith("START")}
        assert all(f"END RequestId: {rid}" in {e.message for e in lines} for rid in kept)
    finally:
        store.close()
    # Without a cap nothing goes.
    (tmp_path / "uncapped").mkdir()
    store = LogStore(tmp_path / "uncapped", max_bytes=0)
    try:
        store.commit([_framed_call(i, 1000 * (i + 1), output=b"x\n") for i in range(500)])
        assert store.trim() == 0 and len(store.query("SELECT id FROM frames")) == 500
    finally:
        store.close()


def test_log_result_is_the_last_4_kb_in_base64():
    import base64

    from lambdalet.gateway.metering.log_lines import log_result

    log = b"a" * 5000 + b"the end\n"
    assert base64.b64decode(log_result(log)) == log[-4096:]
    assert base64.b64decode(log_result(b"short\n")) == b"short\n"
