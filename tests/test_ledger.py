"""The usage ledger: an answered call is billed even after `kill -9`."""

from __future__ import annotations

import json
import multiprocessing
import os
import pathlib
import signal
import subprocess
import sys
import time

import msgspec
import pytest
from helpers import Books, ServerProcess, lambdalet_argv, make_zip

from lambdalet.gateway.metering import billing
from lambdalet.gateway.metering.calls import CallRecord
from lambdalet.gateway.metering.journal import Journal
from lambdalet.gateway.metering.ledger import UsageRecord

ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"


def _row(i: int, started_ns: int | None = None, function: str = "f") -> UsageRecord:
    return UsageRecord(
        request_id=f"req-{i}",
        function=function,
        version="$LATEST",
        architecture="x86_64",
        started_ns=started_ns if started_ns is not None else time.time_ns(),
        duration_ns=12_340_000,
        init_ns=0,
        billed_ms=13,
        granularity_ms=1,
        memory_mb=128,
        max_memory_mb=40,
        cold=i == 0,
        outcome="success",
    )


def _record_then_die(data_dir: str, n: int) -> None:
    books = Books(pathlib.Path(data_dir))
    for i in range(n):
        books.journal.record(_row(i))
    # No flush, no close: the process dies the hard way.
    os.kill(os.getpid(), signal.SIGKILL)


def test_recorded_rows_survive_sigkill_before_any_flush(tmp_path):
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_record_then_die, args=(str(tmp_path), 250))
    child.start()
    child.join()
    assert child.exitcode == -signal.SIGKILL
    books = Books(tmp_path)
    ledger = books.ledger
    try:
        assert books.journal.replayed == 250
        (usage,) = ledger.usage(billing.month_of(time.time_ns()))
        assert (usage.requests, usage.billed_ms, usage.mb_ms) == (250, 250 * 13, 250 * 13 * 128)
    finally:
        books.close()


# A journal as this version writes it (one record per call), and as earlier
# versions left it (usage rows alone): both are replayed, alike.
JOURNALS = {"calls-journal": CallRecord, "usage-journal": lambda row: row}


@pytest.mark.parametrize("journal_name", JOURNALS)
def test_replay_is_idempotent_and_skips_a_torn_tail(tmp_path, journal_name):
    books = Books(tmp_path)
    for i in range(10):
        books.journal.record(_row(i))
    books.journal.flush_sync()  # committed to SQLite ...
    started = {r.request_id: r.started_ns for r in books.ledger.calls(limit=100)}
    books.close()
    journal_dir = tmp_path / journal_name
    # ... and, as if killed between the commit and the unlink, the same rows
    # are still in a journal, followed by a frame cut short mid-write.
    replay = Journal(journal_dir)
    replay.open_next()
    enc = msgspec.msgpack.Encoder()
    frame = JOURNALS[journal_name]
    for i in range(10):
        replay.append(enc.encode(frame(_row(i, started_ns=started[f"req-{i}"]))))
    replay.append(enc.encode(frame(_row(99))))
    replay.close()
    last = replay.files()[-1]
    last.write_bytes(last.read_bytes()[:-5])
    books2 = Books(tmp_path)
    ledger2 = books2.ledger
    try:
        assert books2.journal.replayed == 10
        (usage,) = ledger2.usage(billing.month_of(time.time_ns()))
        assert usage.requests == 10
        assert not any(r.request_id == "req-99" for r in ledger2.calls(limit=100))
        if journal_name == "calls-journal":
            assert [p.name for p in journal_dir.glob("*.journal")] == [books2.journal.journal._path.name]
        else:
            assert not journal_dir.exists()  # an earlier version's journal, replayed once
    finally:
        books2.close()


def _record_torn_then_more_then_die(data_dir: str) -> None:
    import errno

    books = Books(pathlib.Path(data_dir))
    for i in range(5):
        books.journal.record(_row(i))
    real_write = os.write
    calls = {"n": 0}

    def short_then_full(fd, data):
        # Half a frame reaches the file, then the disk is full.
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    os.write = short_then_full
    try:
        books.journal.record(_row(5))
    except OSError:
        pass
    finally:
        os.write = real_write
    for i in range(6, 10):
        books.journal.record(_row(i))  # answered after the failed one: must survive
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_failed_append_does_not_hide_later_records_from_replay(tmp_path):
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_record_torn_then_more_then_die, args=(str(tmp_path),))
    child.start()
    child.join()
    assert child.exitcode == -signal.SIGKILL
    books = Books(tmp_path)
    ledger = books.ledger
    try:
        ids = {r.request_id for r in ledger.calls(limit=100)}
        assert ids == {f"req-{i}" for i in range(10) if i != 5}
    finally:
        books.close()


def test_usage_filters_by_month_and_function(tmp_path):
    books = Books(tmp_path)
    ledger = books.ledger
    try:
        nov, _ = billing.month_bounds_ns("2026-11")
        dec, _ = billing.month_bounds_ns("2026-12")
        books.journal.record(_row(1, nov + 1, "a"))
        books.journal.record(_row(2, nov + 2, "b"))
        books.journal.record(_row(3, dec - 1, "b"))
        books.journal.record(_row(4, dec, "a"))
        books.journal.flush_sync()
        assert [(u.function, u.requests) for u in ledger.usage("2026-11")] == [("a", 1), ("b", 2)]
        assert [(u.function, u.requests) for u in ledger.usage("2026-11", "b")] == [("b", 2)]
        assert [(u.function, u.requests) for u in ledger.usage("2026-12")] == [("a", 1)]
        row = ledger.calls("b", limit=1)[0]
        assert (row.request_id, row.billed_ms, row.memory_mb, row.max_memory_mb, row.outcome) == ("req-3", 13, 128, 40, "success")
    finally:
        books.close()


def _usage_json(srv: ServerProcess, *extra: str) -> dict:
    env = dict(os.environ, LAMBDALET_ENDPOINT=srv.url, LAMBDALET_DATA_DIR=str(srv.data_dir))
    proc = subprocess.run(lambdalet_argv("usage", "--json", *extra), capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_usage_survives_kill_9_of_the_server(tmp_path):
    srv = ServerProcess(tmp_path, "--billing-granularity-ms", "100").start()
    answered: list[str] = []
    try:
        lam = srv.client()
        lam.create_function(
            FunctionName="billed",
            Role=ROLE,
            Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
            Handler="app.handler",
            MemorySize=256,
            Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return e\n"})},
        )
        lam.get_waiter("function_active_v2").wait(FunctionName="billed", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        answered += [
            lam.invoke(FunctionName="billed", Payload=b'{"n": %d}' % i)["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
            for i in range(20)
        ]
        assert len(set(answered)) == 20
    finally:
        # Straight after the last answer: the ledger's batch may not have
        # reached SQLite; the journal must carry it.
        assert srv.stop(signal.SIGKILL) == -signal.SIGKILL
    restarted = ServerProcess(tmp_path, "--billing-granularity-ms", "100").start()
    try:
        doc = _usage_json(restarted)
        assert list(doc) == ["month", "granularity_ms", "functions", "totals"]
        assert doc["month"] == billing.month_of(time.time_ns())
        assert doc["granularity_ms"] == 100
        (fn,) = doc["functions"]
        assert list(fn) == ["function", "requests", "duration_ms", "billed_duration_ms", "gb_seconds", "cost_usd"]
        assert fn["function"] == "billed"
        assert fn["requests"] == 20
        assert fn["billed_duration_ms"] % 100 == 0 and fn["billed_duration_ms"] >= 2000
        assert fn["gb_seconds"] == fn["billed_duration_ms"] / 1000 * 0.25
        assert fn["cost_usd"] == 0.0  # inside the free tier
        assert list(doc["totals"]) == ["requests", "gb_seconds", "cost_usd_before_free_tier", "cost_usd"]
        assert doc["totals"]["requests"] == 20
        assert doc["totals"]["cost_usd_before_free_tier"] > 0
        # The same report over HTTP, with --function and --csv.
        assert _usage_json(restarted, "--function", "billed") == doc
        assert _usage_json(restarted, "--function", "nothing")["functions"] == []
        env = dict(os.environ, LAMBDALET_ENDPOINT=restarted.url, LAMBDALET_DATA_DIR=str(tmp_path))
        csv_out = subprocess.run(lambdalet_argv("usage", "--csv"), capture_output=True, text=True, env=env, timeout=120)
        assert csv_out.returncode == 0 and csv_out.stdout.splitlines()[1].startswith(f"{doc['month']},billed,20,")
        # The calls' logs took the same journal: all 20 REPORT lines are back,
        # billed at the server's 100 ms granularity.
        logs_out = subprocess.run(
            lambdalet_argv("logs", "billed", "--filter", "REPORT RequestId"), capture_output=True, text=True, env=env, timeout=120
        )
        reports = logs_out.stdout.splitlines()
        assert len(reports) == 20 and all("\tBilled Duration: 100 ms\t" in line for line in reports), logs_out.stdout
        assert {line.split("REPORT RequestId: ")[1].split("\t")[0] for line in reports} == set(answered)
    finally:
        assert restarted.stop() == 0


def test_usage_without_a_server_is_one_line(tmp_path):
    (tmp_path / "credentials").write_text("[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = secret\n")
    env = dict(os.environ, LAMBDALET_ENDPOINT="http://127.0.0.1:9", LAMBDALET_DATA_DIR=str(tmp_path))
    proc = subprocess.run(lambdalet_argv("usage", "--json"), capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("lambdalet: cannot reach the server") and proc.stderr.count("\n") == 1
    bad = subprocess.run(lambdalet_argv("usage", "--month", "11-2026"), capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and "--month expects YYYY-MM" in bad.stderr


OLD_USAGE_TABLE = """
CREATE TABLE usage (
    id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, account TEXT NOT NULL, function TEXT NOT NULL,
    version TEXT NOT NULL, architecture TEXT NOT NULL, started_ns INTEGER NOT NULL, duration_ns INTEGER NOT NULL,
    init_ns INTEGER NOT NULL, billed_ms INTEGER NOT NULL, granularity_ms INTEGER NOT NULL, memory_mb INTEGER NOT NULL,
    max_memory_mb INTEGER NOT NULL, cold INTEGER NOT NULL, outcome TEXT NOT NULL,
    UNIQUE (request_id, started_ns)
);
CREATE INDEX usage_by_time ON usage (started_ns);
"""


def _unique_columns(db_path: pathlib.Path, table: str) -> list[list[str]]:
    import sqlite3

    with sqlite3.connect(db_path) as db:
        return [
            [col for _, _, col in db.execute(f"PRAGMA index_info('{name}')")]
            for _, name, unique, *_ in db.execute(f"PRAGMA index_list('{table}')")
            if unique
        ]


def _replay_twice(tmp_path: pathlib.Path) -> None:
    """Records 10 rows, commits them, and leaves the same rows in a journal
    as a kill between commit and unlink would; reopening must not add them again."""
    started = time.time_ns()
    books = Books(tmp_path)
    for i in range(10):
        books.journal.record(_row(i, started_ns=started + i))
    books.journal.flush_sync()
    books.close()
    replay = Journal(tmp_path / "calls-journal")
    replay.open_next()
    enc = msgspec.msgpack.Encoder()
    for i in range(10):
        replay.append(enc.encode(CallRecord(_row(i, started_ns=started + i))))
    replay.close()
    books2 = Books(tmp_path)
    try:
        assert books2.journal.replayed == 10
        assert len(books2.ledger.calls(limit=100)) == 10
    finally:
        books2.close()


def test_a_new_ledger_keys_rows_by_time_first(tmp_path):
    _replay_twice(tmp_path)
    assert _unique_columns(tmp_path / "usage.db", "usage") == [["started_ns", "request_id"]]


def test_a_ledger_made_with_the_old_key_order_keeps_it(tmp_path):
    import sqlite3

    with sqlite3.connect(tmp_path / "usage.db") as db:
        db.executescript(OLD_USAGE_TABLE)
    _replay_twice(tmp_path)
    assert _unique_columns(tmp_path / "usage.db", "usage") == [["request_id", "started_ns"]]


def test_numbers_are_clamped_on_the_way_in_and_on_the_way_out(tmp_path):
    books = Books(tmp_path)
    ledger = books.ledger
    try:
        now = time.time_ns()
        absurd = [
            msgspec.structs.replace(
                _row(1, now), duration_ns=2**63 - 1, billed_ms=2**63 - 1, memory_mb=2**40, max_memory_mb=-3, init_ns=-1
            ),
            msgspec.structs.replace(_row(2, now + 1), duration_ns=-5, billed_ms=-5),
            _row(3, now + 2),
        ]
        for rec in absurd:
            books.journal.record(rec)
        books.journal.flush_sync()
        stored = {r.request_id: r for r in ledger.calls(limit=10)}
        assert (
            stored["req-1"].duration_ns,
            stored["req-1"].billed_ms,
            stored["req-1"].memory_mb,
            stored["req-1"].max_memory_mb,
            stored["req-1"].init_ns,
        ) == (billing.MAX_CALL_NS, billing.MAX_BILLED_MS, billing.MAX_MEMORY_MB, 0, 0)
        assert (stored["req-2"].duration_ns, stored["req-2"].billed_ms) == (0, 0)
        (usage,) = ledger.usage(billing.month_of(now))
        assert usage.requests == 3
        assert usage.duration_ns == billing.MAX_CALL_NS + 0 + 12_340_000
        assert usage.billed_ms == billing.MAX_BILLED_MS + 0 + 13
        assert usage.mb_ms == billing.MAX_MEMORY_MB * billing.MAX_BILLED_MS + 128 * 13
    finally:
        books.close()


def test_usage_summed_in_python_agrees_with_sqlite(tmp_path):
    """The fallback for sums past SQLite's 64-bit range gives what SQLite
    gives where both can (rows as an older server stored them, unclamped)."""
    books = Books(tmp_path)
    ledger = books.ledger
    try:
        now = time.time_ns()
        with ledger._db_lock:
            for i, (fn, arch, duration, billed, memory) in enumerate(
                [
                    ("a", "x86_64", 5_000_000, 5, 128),
                    ("a", "x86_64", -1, -1, 128),
                    ("a", "arm64", 2**62, 2**62, 2**20),
                    ("b", "x86_64", 1_000_001, 2, 256),
                ]
            ):
                ledger._db.execute(
                    "INSERT INTO usage (request_id, account, function, version, architecture, started_ns, duration_ns, init_ns,"
                    " billed_ms, granularity_ms, memory_mb, max_memory_mb, cold, outcome) VALUES (?, '', ?, '$LATEST', ?, ?, ?, 0, ?, 1, ?, 0, 0, 'success')",
                    (f"r{i}", fn, arch, now + i, duration, billed, memory),
                )
        month = billing.month_of(now)
        start, end = billing.month_bounds_ns(month)
        in_sqlite = ledger.usage(month)
        in_python = ledger._usage_in_python(
            " FROM usage WHERE started_ns >= ? AND started_ns < ?",
            (start, end),
            f"MIN(MAX(duration_ns, 0), {billing.MAX_CALL_NS})",
            f"MIN(MAX(billed_ms, 0), {billing.MAX_BILLED_MS})",
            f"MIN(MAX(memory_mb, 0), {billing.MAX_MEMORY_MB})",
        )
        assert [(u.function, u.architecture, u.requests, u.duration_ns, u.billed_ms, u.mb_ms) for u in in_sqlite] == in_python
        assert in_python[0] == ("a", "arm64", 1, billing.MAX_CALL_NS, billing.MAX_BILLED_MS, billing.MAX_MEMORY_MB * billing.MAX_BILLED_MS)
    finally:
        books.close()


def _log(i: int, started_ns: int):
    from lambdalet.gateway.metering.log_records import CallLog

    return CallLog(
        log_group="/aws/lambda/f",
        log_stream="s",
        request_id=f"req-{i}",
        started_ns=started_ns,
        ended_ns=started_ns + 1_000_000,
        log=b"START RequestId: req-%d Version: $LATEST\nhello\n" % i,
    )


def test_a_call_is_one_append_holding_its_usage_and_its_log(tmp_path):
    books = Books(tmp_path)
    try:
        now = time.time_ns()
        books.journal.record(_row(1, now), _log(1, now))
        (frame,) = Journal.read(books.journal.journal.files()[-1])
        rec = msgspec.msgpack.decode(frame, type=CallRecord)
        assert rec.usage.request_id == rec.log.request_id == "req-1"
        books.journal.flush_sync()
        assert [r.request_id for r in books.ledger.calls()] == ["req-1"]
        assert [e.message for e in books.logstore.events("/aws/lambda/f")] == ["START RequestId: req-1 Version: $LATEST", "hello"]
    finally:
        books.close()


def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (a disk that really fills) takes root")


def test_a_call_that_cannot_be_recorded_is_an_error_and_neither_billed_nor_logged(tmp_path):
    """On a full disk the call's one append fails: the caller gets a
    ServiceException and nothing of the call is billed, logged or counted
    (two appends once billed calls whose log append failed)."""
    from helpers import fill_disk, small_tmpfs

    from lambdalet.gateway.errors import LambdaError
    from lambdalet.gateway.execution.accounting import Accounting
    from lambdalet.gateway.execution.pool import CallOutcome, FunctionSpec
    from lambdalet.gateway.functions.model import FunctionRecord
    from lambdalet.gateway.metering.meter import Meter

    _root_only()
    with small_tmpfs(tmp_path / "disk", 512) as disk:
        meter, books = Meter(tmp_path / "meter.bin"), Books(disk)
        try:
            accounting = Accounting(meter, books.journal)
            rec = FunctionRecord(
                name="f",
                runtime="python3.11",
                role="r",
                handler="app.handler",
                code_sha256_hex="",
                code_sha256_b64="",
                code_size=0,
                revision_id="r",
                last_modified="",
                created_ns=0,
            )
            spec = FunctionSpec(record=rec, code_dir="/", arn="arn", env={}, log_group="/aws/lambda/f")

            def outcome(i: int) -> CallOutcome:
                return CallOutcome(
                    request_id=f"req-{i}",
                    payload=b"1",
                    function_error=None,
                    error_type=None,
                    log=b"line\n" * 2000,
                    duration_ns=2_000_000,
                    init_ns=None,
                    cold=False,
                    started_ns=time.time_ns(),
                    memory_mb=128,
                    log_stream="s",
                    kind="success",
                )

            filler = fill_disk(disk)
            # Room for a usage row but not for a 10 KB log: two appends (usage,
            # then log) would bill a call that then failed.
            os.truncate(filler, filler.stat().st_size - 8192)
            with pytest.raises(LambdaError) as refused:
                accounting.on_call(spec, outcome(1))
            assert refused.value.error_type == "ServiceException" and "No space left" in refused.value.message
            filler.unlink()  # room again
            accounting.on_call(spec, outcome(2))
            books.journal.flush_sync()
            assert [r.request_id for r in books.ledger.calls()] == ["req-2"]
            assert [e.message for e in books.logstore.events("/aws/lambda/f")] == ["line"] * 2000  # req-2's alone
            (counted,) = meter.snapshot()
            assert counted.invocations == 1
        finally:
            books.close()
            meter.close()


def test_a_failed_append_leaves_no_part_of_its_frame(tmp_path, monkeypatch):
    """Half a frame reached the file before the disk filled: it is cut off
    again, so the next append follows the last good frame in the same file."""
    import errno

    journal = Journal(tmp_path / "j")
    journal.open_next()
    journal.append(b"first")
    real_write = os.write
    calls = {"n": 0}

    def short_then_full(fd, data):
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_full)
    with pytest.raises(OSError):
        journal.append(b"second, refused")
    monkeypatch.setattr(os, "write", real_write)
    journal.append(b"third")
    journal.close()
    (only,) = journal.files()
    assert list(Journal.read(only)) == [b"first", b"third"]
    assert journal.take_torn() == []


def test_old_rows_fold_into_hours_and_the_month_bills_the_same(tmp_path):
    books = Books(tmp_path)
    try:
        nov, dec = billing.month_bounds_ns("2026-11")
        hour = 3600 * 10**9
        rows = [
            msgspec.structs.replace(
                _row(i, nov + (i % 5) * hour + i * 1_000_000, "a" if i % 3 else "b"),
                duration_ns=1_000_000 * (i + 1),
                billed_ms=i + 1,
                cold=i % 7 == 0,
                outcome="success" if i % 4 else "error",
            )
            for i in range(60)
        ]
        rows.append(_row(99, dec - 1))  # the month's last nanosecond
        rows.append(_row(100, dec + 5))  # and the next month's first call
        for row in rows:
            books.journal.record(row)
        books.journal.flush_sync()
        before = {m: billing.report(m, 1, books.ledger.usage(m)) for m in ("2026-11", "2026-12")}
        assert books.ledger.roll_up(dec + 3 * hour) == 62
        assert books.ledger.calls(limit=100) == []
        (hours,) = books.ledger.query("SELECT count(*) FROM usage_hourly")
        assert hours[0] < 62  # several calls to a row
        assert {m: billing.report(m, 1, books.ledger.usage(m)) for m in before} == before
        assert billing.report("2026-11", 1, books.ledger.usage("2026-11", "b")) == billing.report(
            "2026-11", 1, [u for u in books.ledger.usage("2026-11") if u.function == "b"]
        )
        # A later call of an hour already folded adds to that hour's row.
        (f_before,) = [u.requests for u in books.ledger.usage("2026-11") if u.function == "f"]
        books.journal.record(_row(101, dec - 2))
        books.journal.flush_sync()
        books.ledger.roll_up(dec + 3 * hour)
        (f_after,) = [u.requests for u in books.ledger.usage("2026-11") if u.function == "f"]
        assert f_after == f_before + 1
        assert books.ledger.query("SELECT count(*) FROM usage_hourly") == [hours]
    finally:
        books.close()


def test_a_paced_flush_stores_every_slice_and_a_failed_slice_rolls_back_them_all(tmp_path):
    """The flush of live calls rests between slices (SqliteStore.commit):
    still one transaction, every record in, or none of them."""
    import trio

    from lambdalet.gateway.metering.ledger import RECORDS_PER_SLICE

    books = Books(tmp_path)
    try:
        now = time.time_ns()
        n = 3 * RECORDS_PER_SLICE + 5
        for i in range(n):
            books.journal.record(_row(i, now + i))
        trio.run(books.journal.flush)  # the paced path, as the server's flush task takes it
        assert len(books.ledger.calls(limit=10 * n)) == n
        # A record SQLite cannot bind, in the last slice: the slices before
        # it were inserted in the same transaction and go with it.
        bad = [_row(10_000 + i, now + 10_000 + i) for i in range(n)]
        bad[-1] = msgspec.structs.replace(bad[-1], request_id=object())  # type: ignore[arg-type]
        with pytest.raises(Exception, match="type|bind|support"):
            books.ledger.commit(bad, paced=True)
        assert len(books.ledger.calls(limit=10 * n)) == n
    finally:
        books.close()


def test_the_records_a_flush_waits_for_are_not_tracked_by_the_cyclic_gc():
    """They are the server's young objects between flushes, and they hold
    no cycles: tracked (a CallLog holds a list, and msgspec tracks a struct
    that holds a tracked object), they made the collector run every ~100
    calls and walk the whole pending batch each time (docs/architecture.md)."""
    import gc

    from lambdalet.gateway.metering.log_lines import CallFrame
    from lambdalet.gateway.metering.log_records import CallLog

    frame = CallFrame("req-1", "$LATEST", 1_000_000, 128, 40, None, 1, None, False, 0)
    log = CallLog(
        log_group="/aws/lambda/f", log_stream="s", request_id="req-1", started_ns=1, ended_ns=2, log=b"x\n", marks=[(1, 1)], frame=frame
    )
    for obj in (_row(1), frame, log, CallRecord(_row(1), log)):
        assert not gc.is_tracked(obj), type(obj).__name__
