"""Spare sandboxes: a cold start mounts the function into a pre-started sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import trio
from helpers import allow_public_url, lambdalet_argv, make_zip

from lambdalet.gateway.execution.pool import FunctionSpec, Pool
from lambdalet.gateway.execution.spares import SparePool
from lambdalet.gateway.execution.spawner import SpawnerThread
from lambdalet.gateway.functions.model import FunctionRecord
from lambdalet.sandbox.runtime_root import RuntimeRoot

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="spare sandboxes need the namespaced backend (root here)")


def _record(name: str, code_sha: str = "0" * 64) -> FunctionRecord:
    return FunctionRecord(
        name=name,
        runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
        role="r",
        handler="app.handler",
        code_sha256_hex=code_sha,
        code_sha256_b64="",
        code_size=1,
        revision_id=f"rev-{name}",
        last_modified="",
        created_ns=0,
        memory_size=256,
    )


@pytest.mark.trio
async def test_a_cold_start_takes_a_spare_and_mounts_the_code(tmp_path):
    from lambdalet.sandbox.namespaced import NamespacedBackend

    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text("import os\ndef handler(e, c):\n    return sorted(os.listdir('/var/task'))\n")
    os.chmod(tmp_path, 0o755)
    backend = NamespacedBackend(RuntimeRoot.create(tmp_path / "runtime"))
    spawner = SpawnerThread()
    spares = SparePool(backend, spawner, tmp_path / "empty", size=1)
    pool = Pool(backend, concurrency_limit=10, spawner=spawner, spares=spares)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            await nursery.start(spares.run)
            spec = FunctionSpec(record=_record("first"), code_dir=str(code), arn="arn:first", env={}, log_group="g")
            first = await pool.invoke(spec, b"{}")  # no spare yet: it wakes the spare pool
            assert json.loads(first.payload) == ["app.py"]
            while spares.statistics()["ready"] == 0:
                await trio.sleep(0.01)
            second = FunctionSpec(record=_record("second"), code_dir=str(code), arn="arn:second", env={}, log_group="g")
            outcome = await pool.invoke(second, b"{}")
            assert outcome.function_error is None, outcome.payload
            assert json.loads(outcome.payload) == ["app.py"]
            assert spares.statistics()["handed_out"] == 1
            assert outcome.cold and outcome.init_ns is not None
            nursery.cancel_scope.cancel()
    finally:
        spawner.close()
        backend.close()


@pytest.mark.trio
async def test_spares_are_per_interpreter_and_started_by_its_own_demand(tmp_path):
    from lambdalet.sandbox import interpreters
    from lambdalet.sandbox.namespaced import NamespacedBackend

    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text("import sys\ndef handler(e, c):\n    return sys.version.split()[0]\n")
    os.chmod(tmp_path, 0o755)
    py312 = interpreters.discover()[0]["python3.12"]
    backend = NamespacedBackend(
        RuntimeRoot.create(tmp_path / "runtime"), runtimes={"python3.12": RuntimeRoot.create(tmp_path / "runtime-312", py312)}
    )
    spawner = SpawnerThread()
    spares = SparePool(backend, spawner, tmp_path / "empty", size=1)
    pool = Pool(backend, concurrency_limit=10, spawner=spawner, spares=spares)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            await nursery.start(spares.run)

            def spec(name: str) -> FunctionSpec:
                return FunctionSpec(
                    record=_record(name), code_dir=str(code), arn=f"arn:{name}", env={}, log_group="g", runtime="python3.12"
                )

            first = await pool.invoke(spec("first-312"), b"{}")  # no spare yet: it wakes 3.12's
            assert json.loads(first.payload) == py312.version
            while spares.ready("python3.12") == 0:
                await trio.sleep(0.01)
            outcome = await pool.invoke(spec("second-312"), b"{}")
            assert json.loads(outcome.payload) == py312.version, outcome.payload
            assert spares.statistics()["handed_out"] == 1
            # Nobody asked for the default interpreter: none of its spares exist.
            assert spares.ready("") == 0 and spares.statistics()["ready"] + spares.statistics()["starting"] <= 1
            nursery.cancel_scope.cancel()
    finally:
        spawner.close()
        backend.close()


def test_spares_do_not_exist_until_the_first_call(tmp_path):
    from helpers import ServerProcess, descendants_of

    srv = ServerProcess(tmp_path / "d").start()
    try:
        lam = srv.client()
        lam.create_function(
            FunctionName="never",
            Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
            Role="arn:aws:iam::123456789012:role/r",
            Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 1\n"})},
        )
        # Registered but never called: no process at all.
        assert descendants_of(srv.proc.pid) == set()
    finally:
        assert srv.stop() == 0


def test_lambdalet_bench_against_a_url_and_a_function(server, lam, deploy):
    name = deploy({"app.py": "def handler(e, c):\n    return {'statusCode': 200, 'body': 'ok'}\n"})
    url = lam.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    allow_public_url(lam, name)
    env = dict(os.environ, LAMBDALET_ENDPOINT=server.url, LAMBDALET_DATA_DIR=str(server.data_dir))
    for target in (url, name):
        out = subprocess.run(
            lambdalet_argv("bench", target, "-c", "2", "-d", "1", "--json"), capture_output=True, text=True, env=env, timeout=60
        )
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        assert report["errors"] == 0 and report["requests"] > 0
        assert set(report["latency_ms"]) == {"p50", "p90", "p99", "p99.9", "max"}
        assert report["status"] == {"200": report["requests"]}
    bad = subprocess.run(lambdalet_argv("bench", url, "-c", "0"), capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


def test_open_loop_rate_is_accepted(server, lam, deploy):
    name = deploy({"app.py": "def handler(e, c):\n    return {'statusCode': 200, 'body': 'ok'}\n"})
    url = lam.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    allow_public_url(lam, name)
    out = subprocess.run(
        lambdalet_argv("bench", url, "-c", "2", "-d", "1", "--rate", "50", "--json"), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["errors"] == 0 and 0 < report["requests"] <= 60


def test_response_reader_frames_length_and_chunked_bodies():
    from lambdalet.gateway.cli.loadgen import ResponseReader

    r = ResponseReader()
    r.feed(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    )
    assert r.next_response() == (200, b"abc")
    assert r.next_response() == (404, b"hi")
    assert r.next_response() is None
