"""The embedding API, `lambdalet.Lambdalet`, from plain trio programs.

The README's example is read out of README.md (the block after the
`<!-- embedding: example -->` marker) and run as written, in a process of
its own whose every TCP bind and connect is recorded by an audit hook: the
call path has no HTTP. The other tests compare an embedded invoke with an
Invoke over HTTP on the same Lambdalet: the same usage row, counters and log
lines, the same sandboxes.
"""

from __future__ import annotations

import configparser
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import boto3
import botocore.config
import pytest
import trio

import lambdalet
from lambdalet.gateway.metering import billing

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Loaded by the example's interpreter before the example (sitecustomize is
# imported from PYTHONPATH at start-up): once lambdalet and what it imports
# are loaded (urllib3 probes for IPv6 with a bind when imported), every bind
# or connect of an AF_INET or AF_INET6 socket in that process is written down.
AUDIT = """
import socket, sys
from lambdalet import Lambdalet  # the composition root and all it imports
def _hook(event, args):
    if event in ("socket.bind", "socket.connect") and args[0].family in (socket.AF_INET, socket.AF_INET6):
        with open({path!r}, "a") as f:
            f.write(f"{{event}} {{args[1]!r}}\\n")
sys.addaudithook(_hook)
"""

APP = "def handler(event, context):\n    print('handling', event)\n    return {'hello': event}\n"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- embedding: example[^>]*-->\n```python\n(.*?)```", text, re.S)
    assert m, "README.md has no embedding example"
    return m.group(1)


def test_the_readme_example_runs_as_written_with_no_http(tmp_path):
    (tmp_path / "example.py").write_text(readme_example())
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    record = tmp_path / "tcp.log"
    (hooks / "sitecustomize.py").write_text(AUDIT.format(path=str(record)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAMBDALET_"))}
    env["PYTHONPATH"] = str(hooks)
    proc = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "{'hello': {'x': 1}}"
    assert record.exists() is False, record.read_text()  # nothing bound or connected over TCP
    # What it did is in its data directory, as a server's would be.
    assert (tmp_path / "lambdalet-data" / "lambdalet.db").exists()
    assert (tmp_path / "hello-embedded" / "app.py").exists()


def _client(base_url: str, data_dir: pathlib.Path):
    creds = configparser.ConfigParser()
    creds.read(data_dir / "credentials")
    return boto3.client(
        "lambda",
        endpoint_url=base_url,
        region_name="us-east-1",
        aws_access_key_id=creds["default"]["aws_access_key_id"],
        aws_secret_access_key=creds["default"]["aws_secret_access_key"],
        config=botocore.config.Config(retries={"max_attempts": 0}),
    )


@pytest.mark.trio
async def test_an_embedded_invoke_is_metered_billed_and_logged_as_an_http_invoke(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(APP)
    data = tmp_path / "data"
    async with lambdalet.Lambdalet(data_dir=data) as lam:
        conf = await lam.deploy("hello", code, handler="app.handler", memory_size=256)
        assert conf["Handler"] == "app.handler" and conf["MemorySize"] == 256
        embedded = await lam.invoke("hello", {"via": "embedding"})
        assert embedded.json() == {"hello": {"via": "embedding"}} and embedded.function_error is None
        assert embedded.executed_version == "$LATEST"
        async with trio.open_nursery() as nursery:
            serving = await nursery.start(lam.serve_http, "127.0.0.1", 0)
            client = _client(serving.base_url, data)
            answer = await trio.to_thread.run_sync(lambda: client.invoke(FunctionName="hello", Payload=b'{"via": "http"}'))
            http_payload = await trio.to_thread.run_sync(answer["Payload"].read)
            nursery.cancel_scope.cancel()
        assert json.loads(http_payload) == {"hello": {"via": "http"}}
        http_id = answer["ResponseMetadata"]["RequestId"]

        # The counters: two calls of one function version, one cold start.
        (slot,) = [s for s in lam.meter.snapshot() if s.function == "hello"]
        assert (slot.invocations, slot.outcomes.get("success"), slot.cold_starts) == (2, 2, 1)
        # The usage rows: one per call, the same fields, billed alike.
        await lam.calls.flush()
        rows = {r.request_id: r for r in await trio.to_thread.run_sync(lambda: lam.ledger.calls("hello"))}
        assert set(rows) == {embedded.request_id, http_id}
        first, second = rows[embedded.request_id], rows[http_id]
        assert first.cold and not second.cold  # the HTTP call found the embedded call's warm instance
        for row in (first, second):
            assert (row.function, row.version, row.memory_mb, row.outcome, row.account) == (
                "hello",
                "$LATEST",
                256,
                "success",
                "000000000000",
            )
            assert row.billed_ms == billing.billed_ms(row.duration_ns, 1) >= 1
        month = billing.month_of(first.started_ns)
        (usage,) = await lam.calls.usage(month, "hello")
        assert usage.requests == 2
        # The logs: both calls in the function's log group, each framed by
        # the platform's START and REPORT lines, the handler's line between.
        events = await trio.to_thread.run_sync(lambda: lam.logstore.events("/aws/lambda/hello"))
        text = "\n".join(e.message for e in events)
        for request_id, via in ((embedded.request_id, "embedding"), (http_id, "http")):
            assert f"START RequestId: {request_id}" in text and f"REPORT RequestId: {request_id}" in text
            assert f"handling {{'via': '{via}'}}" in text
        assert f"START RequestId: {embedded.request_id}".encode() in embedded.log
        assert embedded.log.rstrip().splitlines()[-1].startswith(f"REPORT RequestId: {embedded.request_id}".encode())


@pytest.mark.trio
async def test_embedded_calls_run_in_the_servers_sandboxes_and_errors_keep_lambdas_shape(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(
        textwrap.dedent("""
        import os
        def handler(event, context):
            if event.get("fail"):
                raise ValueError("no")
            return {"pid": os.getpid(), "hostname": os.uname().nodename}
    """)
    )
    async with lambdalet.Lambdalet(data_dir=tmp_path / "data") as lam:
        await lam.deploy("fn", code, handler="app.handler")
        ok = (await lam.invoke("fn", {})).json()
        if lam.backend.name == "namespaced":
            # Its own pid namespace: the worker is not a process of this host's.
            assert ok["pid"] < 10 and ok["pid"] != os.getpid()
        failed = await lam.invoke("fn", {"fail": True})
        assert failed.function_error == "Unhandled"
        assert failed.json()["errorType"] == "ValueError" and failed.json()["errorMessage"] == "no"
        for call, error_type in (
            (lam.invoke("missing", {}), "ResourceNotFoundException"),
            (lam.invoke("fn", payload=b"{not json"), "InvalidRequestContentException"),
            (lam.invoke("fn", payload=b'"' + b"x" * (6 * 1024 * 1024) + b'"'), "RequestTooLargeException"),
        ):
            with pytest.raises(lambdalet.LambdaError) as exc:
                await call
            assert exc.value.error_type == error_type
        with pytest.raises(lambdalet.LambdaError) as exc:
            await lam.deploy("bad name!", code, handler="app.handler")
        assert exc.value.error_type in ("InvalidParameterValueException", "ValidationException")
        # An update of the code reaches the next call.
        (code / "app.py").write_text("def handler(event, context):\n    return 'v2'\n")
        await lam.deploy("fn", code)
        assert (await lam.invoke("fn", {})).json() == "v2"


@pytest.mark.trio
async def test_one_lambdalet_per_data_dir_and_nothing_left_running(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text("import os\ndef handler(event, context):\n    return os.getpid()\n")
    async with lambdalet.Lambdalet(data_dir=tmp_path / "data", sandbox="process") as lam:
        await lam.deploy("fn", code, handler="app.handler")
        pid = (await lam.invoke("fn", {})).json()
        with pytest.raises(lambdalet.ConfigError):
            async with lambdalet.Lambdalet(data_dir=tmp_path / "data", sandbox="process"):
                pass
    # Leaving the block stopped the worker and released the directory.
    assert not os.path.exists(f"/proc/{pid}")
    async with lambdalet.Lambdalet(data_dir=tmp_path / "data", sandbox="process") as lam:
        assert (await lam.invoke("fn", {})).json() != pid


@pytest.mark.trio
async def test_an_exception_in_the_block_reaches_the_caller_as_itself(tmp_path):
    with pytest.raises(lambdalet.LambdaError) as exc:
        async with lambdalet.Lambdalet(data_dir=tmp_path / "data", sandbox="process") as lam:
            await lam.invoke("missing", {})
    assert exc.value.error_type == "ResourceNotFoundException"
    # The data dir was released on the way out: a new Lambdalet opens it.
    async with lambdalet.Lambdalet(data_dir=tmp_path / "data", sandbox="process"):
        pass
