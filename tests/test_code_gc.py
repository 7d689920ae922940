"""Code that no function or version names is removed, crash-safely, and
never while a call, an instance or a download link still needs it."""

from __future__ import annotations

import base64
import json
import pathlib
import re
import signal
import sys
import threading

import botocore.exceptions
import pytest
import requests
import trio
import trio.testing
from helpers import ServerProcess, make_zip, wait_for

from lambdalet.gateway.functions.code_gc import CodeCollector, CodeHolds
from lambdalet.gateway.functions.codestore import CodeStore

PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ROLE = "arn:aws:iam::123456789012:role/r"
HEX = re.compile(r"[0-9a-f]{64}")


def _app(tag: str, sleep_s: float = 0.0) -> bytes:
    # Reads a file of its code at call time, after the sleep: a tree removed
    # under a running call shows up as a failed call.
    src = (
        "import os, time\n"
        "def handler(e, c):\n"
        f"    time.sleep(e.get('sleep', {sleep_s}))\n"
        "    with open(os.path.join(os.environ['LAMBDA_TASK_ROOT'], 'data.txt')) as f:\n"
        "        return f.read()\n"
    )
    return make_zip({"app.py": src, "data.txt": tag, "pad.bin": tag.encode() * 1000})


def stored(data_dir: pathlib.Path) -> set[str]:
    """Digests with a blob or a tree on disk."""
    code = data_dir / "code"
    out = {p.stem for p in (code / "blobs").iterdir() if HEX.fullmatch(p.stem)}
    return out | {p.name for p in (code / "trees").iterdir() if HEX.fullmatch(p.name)}


def leftovers(data_dir: pathlib.Path) -> list[str]:
    code = data_dir / "code"
    return [p.name for d in ("blobs", "trees") for p in (code / d).iterdir() if not HEX.fullmatch(p.stem if d == "blobs" else p.name)]


def referenced(lam) -> set[str]:
    """Digests named by every function and published version, via the API."""
    out = set()
    for page in lam.get_paginator("list_functions").paginate(FunctionVersion="ALL"):
        for f in page["Functions"]:
            out.add(base64.b64decode(f["CodeSha256"]).hex())
    return out


def hex_of(zip_bytes: bytes) -> str:
    import hashlib

    return hashlib.sha256(zip_bytes).hexdigest()


def invoke(lam, name: str, event: dict | None = None, qualifier: str | None = None):
    kwargs = {"Qualifier": qualifier} if qualifier else {}
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **kwargs)
    return resp.get("FunctionError"), json.loads(resp["Payload"].read())


def create(lam, name: str, zip_bytes: bytes, **kwargs) -> None:
    lam.create_function(FunctionName=name, Runtime=PY, Role=ROLE, Handler="app.handler", Code={"ZipFile": zip_bytes}, **kwargs)


@pytest.fixture
def own_server(tmp_path):
    srv = ServerProcess(tmp_path / "data").start()
    yield srv
    assert srv.stop() == 0, "".join(srv.output)


def test_code_is_removed_after_update_and_delete(own_server):
    srv, lam = own_server, own_server.client()
    data = srv.data_dir
    create(lam, "keep", _app("keep"))
    create(lam, "churn", _app("v0"))
    assert invoke(lam, "churn") == (None, "v0")
    for i in range(1, 6):
        lam.update_function_code(FunctionName="churn", ZipFile=_app(f"v{i}"))
        assert invoke(lam, "churn") == (None, f"v{i}")  # a warm instance of each revision
    # Only the code something names stays: two functions, two digests.
    wait_for(lambda: stored(data) == referenced(lam) == {hex_of(_app("keep")), hex_of(_app("v5"))})

    # A published version keeps its code after $LATEST moves on, until the
    # version is deleted.
    lam.publish_version(FunctionName="churn")
    lam.update_function_code(FunctionName="churn", ZipFile=_app("v6"))
    assert invoke(lam, "churn", qualifier="1") == (None, "v5")
    wait_for(lambda: stored(data) == {hex_of(_app("keep")), hex_of(_app("v5")), hex_of(_app("v6"))})
    lam.delete_function(FunctionName="churn", Qualifier="1")
    wait_for(lambda: stored(data) == {hex_of(_app("keep")), hex_of(_app("v6"))})

    # A dry run stores nothing that stays.
    lam.update_function_code(FunctionName="keep", ZipFile=_app("dry"), DryRun=True)
    wait_for(lambda: stored(data) == {hex_of(_app("keep")), hex_of(_app("v6"))})

    # Code shared by two functions stays while either names it.
    create(lam, "twin", _app("keep"))
    lam.delete_function(FunctionName="keep")
    assert invoke(lam, "twin") == (None, "keep")
    lam.delete_function(FunctionName="churn")
    wait_for(lambda: stored(data) == {hex_of(_app("keep"))})
    lam.delete_function(FunctionName="twin")
    # Names go first, the renamed-aside bytes a moment later: wait for both.
    wait_for(lambda: stored(data) == set() and leftovers(data) == [])


def test_deleting_ten_functions_frees_their_space(own_server):
    srv, lam = own_server, own_server.client()
    for i in range(10):
        create(lam, f"f{i}", _app(f"f{i}"))
        assert invoke(lam, f"f{i}") == (None, f"f{i}")
    assert len(stored(srv.data_dir)) == 10
    for i in range(10):
        lam.delete_function(FunctionName=f"f{i}")
    # The store renames a blob aside before unlinking it: its name goes
    # first, the bytes a moment later. Wait for both.
    blobs = srv.data_dir / "code" / "blobs"
    wait_for(lambda: stored(srv.data_dir) == set() and not any(blobs.iterdir()))


def _in_flight(srv: ServerProcess, name: str) -> int:
    text = requests.get(srv.url + "/metrics", timeout=10).text
    m = re.search(rf'^lambdalet_concurrent_executions\{{function="{re.escape(name)}",version="\$LATEST"\}} (\S+)$', text, re.M)
    return int(float(m.group(1))) if m else 0


@pytest.mark.parametrize("change", ["update", "delete"])
def test_a_call_on_replaced_code_completes(own_server, change):
    srv, lam = own_server, own_server.client()
    create(lam, "slow", _app("old"), Timeout=30)
    old = hex_of(_app("old"))
    result: dict = {}

    def call():
        result["out"] = invoke(srv.client(), "slow", {"sleep": 3})

    caller = threading.Thread(target=call)
    caller.start()
    try:
        wait_for(lambda: _in_flight(srv, "slow") == 1, timeout=30)
        if change == "update":
            lam.update_function_code(FunctionName="slow", ZipFile=_app("new"))
            assert invoke(lam, "slow", {"sleep": 0}) == (None, "new")  # a second instance, on the new code
        else:
            lam.delete_function(FunctionName="slow")
        # The running call's instance holds its tree: still there.
        assert old in stored(srv.data_dir) and _in_flight(srv, "slow") == 1
    finally:
        caller.join(timeout=60)
    assert result["out"] == (None, "old")
    # Once the call is done and its instance retired, the old code goes.
    wait_for(lambda: old not in stored(srv.data_dir), timeout=30)


def test_a_download_link_outlives_an_update_but_not_a_delete(own_server):
    lam = own_server.client()
    create(lam, "linked", _app("one"))
    link = lam.get_function(FunctionName="linked")["Code"]["Location"]
    lam.update_function_code(FunctionName="linked", ZipFile=_app("two"))
    lam.publish_version(FunctionName="linked")
    version_link = lam.get_function(FunctionName="linked", Qualifier="1")["Code"]["Location"]
    lam.update_function_code(FunctionName="linked", ZipFile=_app("three"))
    # The link was issued for code that is no longer $LATEST's: it still
    # serves exactly that code until it expires, as a presigned URL would;
    # so does a version's link.
    got = requests.get(link, timeout=10)
    assert got.status_code == 200 and got.content == _app("one")
    got = requests.get(version_link, timeout=10)
    assert got.status_code == 200 and got.content == _app("two")
    assert hex_of(_app("one")) in stored(own_server.data_dir)
    lam.delete_function(FunctionName="linked")
    assert requests.get(link, timeout=10).status_code == 404
    wait_for(lambda: stored(own_server.data_dir) == set())


# -- kill -9 at chosen points --------------------------------------------------


def _restart_and_check(data: pathlib.Path, expect: dict[str, str]) -> None:
    """After the kill: every function left runs its code, and the store holds
    exactly the code that records name, with no half-removed leftovers."""
    again = ServerProcess(data).start()
    try:
        lam = again.client()
        names = {f["FunctionName"] for f in lam.list_functions()["Functions"]}
        assert names == set(expect)
        for name, tag in expect.items():
            assert invoke(lam, name) == (None, tag)
        assert stored(data) == referenced(lam)
        assert leftovers(data) == []
    finally:
        assert again.stop() == 0


def _killed(srv: ServerProcess, action) -> None:
    with pytest.raises((botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError, requests.ConnectionError)):
        action()
    assert srv.stop(timeout=30) == -signal.SIGKILL


def test_kill_after_code_is_stored_but_before_create_commits(tmp_path):
    data = tmp_path / "data"
    srv = ServerProcess(data, env={"LAMBDALET_CRASH_AT": "code-put:stored#2"}).start()
    lam = srv.client()
    create(lam, "first", _app("first"))
    _killed(srv, lambda: create(lam, "second", _app("second")))
    assert hex_of(_app("second")) in stored(data)  # the orphan a kill leaves ...
    _restart_and_check(data, {"first": "first"})  # ... and the sweep at start removes


def test_kill_after_new_code_is_stored_but_before_update_commits(tmp_path):
    data = tmp_path / "data"
    srv = ServerProcess(data, env={"LAMBDALET_CRASH_AT": "code-put:stored#2"}).start()
    lam = srv.client()
    create(lam, "fn", _app("old"))
    _killed(srv, lambda: lam.update_function_code(FunctionName="fn", ZipFile=_app("new")))
    _restart_and_check(data, {"fn": "old"})


def test_kill_after_delete_commits_but_before_code_is_removed(tmp_path):
    data = tmp_path / "data"
    srv = ServerProcess(data, env={"LAMBDALET_CRASH_AT": "function-delete:committed"}).start()
    lam = srv.client()
    create(lam, "gone", _app("gone"))
    create(lam, "kept", _app("kept"))
    _killed(srv, lambda: lam.delete_function(FunctionName="gone"))
    assert hex_of(_app("gone")) in stored(data)
    _restart_and_check(data, {"kept": "kept"})


@pytest.mark.parametrize("point", ["code-detach:blobs", "code-detach:trees"])
def test_kill_in_the_middle_of_removing_code(tmp_path, point):
    data = tmp_path / "data"
    srv = ServerProcess(data, env={"LAMBDALET_CRASH_AT": point}).start()
    lam = srv.client()
    create(lam, "fn", _app("old"))
    create(lam, "other", _app("other"))
    # The update answers; the collection it starts dies half-way.
    try:
        lam.update_function_code(FunctionName="fn", ZipFile=_app("new"))
    except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError):
        pass
    wait_for(lambda: srv.proc.poll() is not None, timeout=30)
    assert srv.stop() == -signal.SIGKILL
    assert hex_of(_app("old")) in stored(data) or leftovers(data)  # killed mid-way
    _restart_and_check(data, {"fn": "new", "other": "other"})


# -- the collector on its own ----------------------------------------------------


async def _until(predicate, steps: int = 100_000) -> None:
    # Virtual time jumps while a collection runs in its thread; poll the
    # condition, not the clock.
    for _ in range(steps):
        if predicate():
            return
        await trio.sleep(0.01)
    raise AssertionError("condition not reached")


def test_holds_and_timed_holds_keep_code_until_they_end(tmp_path):
    store = CodeStore(tmp_path / "code")
    a = store.put(make_zip({"a.py": "1"})).sha256_hex
    b = store.put(make_zip({"b.py": "2"})).sha256_hex
    named: set[str] = {a}
    holds = CodeHolds()

    async def main():
        collector = CodeCollector(store, holds, lambda: set(named), trio.Lock(), wall=trio.current_time)
        async with trio.open_nursery() as nursery:
            await nursery.start(collector.run)
            holds.hold(collector.path(b))
            holds.hold(collector.path(b))
            link_ends = trio.current_time() + 600
            holds.hold_until(collector.path(b), link_ends, "fn")
            collector.suspect(a, b)  # a is named, b is held
            await _until(lambda: collector.pending() == {b})
            assert store.has(a) and store.has(b)
            holds.release(collector.path(b))
            holds.release(collector.path(b))  # the counted holds are gone; the link's is not
            # Collected when the link expires, with no other nudge.
            # The blob goes first and its unpacked tree after it, in the
            # collector's thread: wait for both, not for the first.
            await _until(lambda: not store.has(b) and not store.tree_path(b).exists())
            assert trio.current_time() >= link_ends
            assert collector.pending() == set() and holds.statistics() == {"counted": 0, "timed": 0}
            # A revoked link (its function deleted) stops holding at once.
            named.discard(a)
            link_ends = trio.current_time() + 600
            holds.hold_until(collector.path(a), link_ends, "fn")
            collector.suspect(a)
            await _until(lambda: collector.pending() == {a})
            holds.revoke("fn")
            await _until(lambda: not store.has(a))
            assert trio.current_time() < link_ends
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_sweep_removes_unnamed_code_and_rebuilds_a_missing_tree(tmp_path):
    store = CodeStore(tmp_path / "code")
    keep = store.put(make_zip({"a.py": "1"}))
    drop = store.put(make_zip({"b.py": "2"}))
    import shutil

    shutil.rmtree(keep.tree)
    collector = CodeCollector(store, CodeHolds(), lambda: {keep.sha256_hex}, trio.Lock())
    assert collector.sweep() == [drop.sha256_hex]
    assert store.stored() == {keep.sha256_hex} and (keep.tree / "a.py").read_text() == "1"
