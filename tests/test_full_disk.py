"""A full disk is a state, not a crash: the server's data dir on a small
tmpfs (a disk that really fills; the suite runs as root), filled while
calls come in, restarted full, then given room again."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import sys

import botocore.exceptions
import pytest
import requests
from helpers import ServerProcess, fill_disk, make_zip, signed_get, small_tmpfs, wait_for

ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"
APP = "def handler(event, context):\n    print('hello from', event)\n    return event\n"


@pytest.fixture
def disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs (a disk that really fills) takes root")
    with small_tmpfs(tmp_path / "disk", 64 * 1024) as path:
        yield path


def _call(lam, i: int) -> str | None:
    """The request id of a call answered 200, or None for one refused with
    Lambda's JSON ServiceException."""
    try:
        resp = lam.invoke(FunctionName="f", Payload=json.dumps(i).encode())
    except botocore.exceptions.ClientError as exc:
        err = exc.response
        assert err["ResponseMetadata"]["HTTPStatusCode"] == 500
        assert err["Error"]["Code"] == "ServiceException" and "No space left on device" in err["Error"]["Message"], err
        assert err["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/json"
        return None
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp and json.loads(resp["Payload"].read()) == i
    return resp["ResponseMetadata"]["RequestId"]


def _usage_requests(srv: ServerProcess) -> int:
    r = signed_get(srv, "/_lambdalet/usage?function=f")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json", r.text[:300]
    functions = r.json()["functions"]
    return functions[0]["requests"] if functions else 0


def _metric(srv: ServerProcess, name: str) -> float:
    text = requests.get(srv.url + "/metrics", timeout=10).text
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    assert m, name
    return float(m.group(1))


def test_a_full_disk_is_a_state_not_a_crash(disk):
    answered: set[str] = set()
    srv = ServerProcess(disk).start()
    try:
        lam = srv.client()
        lam.create_function(
            FunctionName="f",
            Role=ROLE,
            Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
            Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": APP})},
        )
        lam.get_waiter("function_active_v2").wait(FunctionName="f", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        answered |= {rid for i in range(3) if (rid := _call(lam, i))}
        assert len(answered) == 3
        # Code that does not compress: deleting it must give its room back.
        big = make_zip({"app.py": APP, "blob.bin": os.urandom(2 * 1024 * 1024)})
        lam.create_function(
            FunctionName="big",
            Role=ROLE,
            Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
            Handler="app.handler",
            Code={"ZipFile": big},
        )
        filler = fill_disk(disk)
        results = [_call(lam, i) for i in range(3, 23)]
        answered |= {rid for rid in results if rid}
        assert None in results, "the disk never refused a call"
        # Writes are refused with Lambda's JSON errors, not an HTML page.
        for write in (
            lambda: lam.create_function(
                FunctionName="g",
                Role=ROLE,
                Handler="app.handler",
                Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
                Code={"ZipFile": make_zip({"app.py": APP, "pad.bin": os.urandom(256 * 1024)})},
            ),
            lambda: lam.update_function_code(FunctionName="f", ZipFile=make_zip({"app.py": APP, "pad.bin": os.urandom(256 * 1024)})),
        ):
            with pytest.raises(botocore.exceptions.ClientError) as exc:
                write()
            err = exc.value.response
            assert err["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/json", err
            assert err["Error"]["Code"] in ("CodeStorageExceededException", "ServiceException"), err
            assert "space" in err["Error"]["Message"].lower(), err
        # Deleting a function frees its code's space, even on the full disk.
        free = _metric(srv, "lambdalet_data_dir_free_bytes")
        lam.delete_function(FunctionName="big")
        wait_for(lambda: _metric(srv, "lambdalet_data_dir_free_bytes") > free + 1024 * 1024)
        # The blob goes first and its unpacked tree after it: fill the disk
        # again only once both are gone, or the tree's room comes back after.
        digest = hashlib.sha256(big).hexdigest()
        wait_for(lambda: not [p for d in ("blobs", "trees") for p in (disk / "code" / d).glob(digest + "*")])
        filler = fill_disk(disk, "filler2")  # full again
        # Still serving, reading and reporting: every answered call, and no other, is billed.
        assert requests.get(srv.url + "/health", timeout=10).status_code == 200
        assert _usage_requests(srv) == len(answered)
        # Logs read what SQLite holds; the journal's calls show once there is room.
        r = signed_get(srv, "/_lambdalet/logs?function=f")
        assert r.status_code == 200 and isinstance(r.json()["events"], list), r.text[:300]
        assert _metric(srv, "lambdalet_data_dir_free_bytes") < 64 * 1024
    finally:
        assert srv.stop() == 0, "".join(srv.output[-30:])

    # Restarted on the same full disk: the journal it cannot replay waits.
    srv = ServerProcess(disk).start()
    try:
        assert _usage_requests(srv) == len(answered)
        if _metric(srv, "lambdalet_journal_backlog_files"):
            assert _metric(srv, "lambdalet_usage_and_logs_degraded") == 1
        filler.unlink()  # room again: the backlog goes in, calls are recorded again
        (disk / "filler").unlink(missing_ok=True)
        wait_for(lambda: _metric(srv, "lambdalet_journal_backlog_files") == 0 and _metric(srv, "lambdalet_usage_and_logs_degraded") == 0)
        lam = srv.client()
        rid = _call(lam, 99)
        assert rid is not None
        answered.add(rid)
        assert _usage_requests(srv) == len(answered)
    finally:
        assert srv.stop() == 0, "".join(srv.output[-30:])

    for name in ("usage.db", "logs.db", "lambdalet.db", "queue.db"):
        with contextlib.closing(sqlite3.connect(disk / name)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",), name
    with contextlib.closing(sqlite3.connect(disk / "usage.db")) as db:
        billed = {rid for (rid,) in db.execute("SELECT request_id FROM usage WHERE function = 'f'")}
    assert billed == answered
    with contextlib.closing(sqlite3.connect(disk / "logs.db")) as db:
        # A call that printed nothing has no text row: its START, END and REPORT are a frame.
        logged = {rid for (rid,) in db.execute("SELECT request_id FROM frames")}
    assert logged == answered
