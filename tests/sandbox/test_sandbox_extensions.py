"""External extensions in real sandboxes, driven through the pool: the
SHUTDOWN phase, extension time in a call's Duration, the failures AWS
names (Extension.Crash, Extension.InitError, Extension.ExitError), and a
table of hostile extensions, each with the outcome the platform must keep
(caps enforced outside the sandbox). The module's backend fixture fails
the module if a sandbox process, an fd or a cgroup outlives the tests.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
import trio

from lambdalet.gateway.execution.pool import FunctionSpec, Pool
from lambdalet.gateway.execution.runtime_api import server as api_server
from lambdalet.gateway.execution.runtime_api import telemetry as tm
from lambdalet.gateway.functions.model import FunctionRecord
from lambdalet.runtime.protocol import MAX_CALL_LOG

EXTENSION = """#!/usr/bin/python3
import http.client, json, os, socket, sys, time
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
name = os.path.basename(sys.argv[0])

def call(method, path, body=None, headers={}):
    c = http.client.HTTPConnection(api)
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    return r, r.read()

@before_register@
r, _ = call("POST", "/2020-01-01/extension/register", json.dumps({"events": ["INVOKE", "SHUTDOWN"]}),
            {"Lambda-Extension-Name": name})
H = {"Lambda-Extension-Identifier": r.getheader("Lambda-Extension-Identifier")}
@after_register@
while True:
    r, data = call("GET", "/2020-01-01/extension/event/next", headers=H)
    if r.status != 200:
        sys.exit(0)
    event = json.loads(data)
    if event["eventType"] == "SHUTDOWN":
        print("shutdown", event["shutdownReason"], event["deadlineMs"] > time.time() * 1000, flush=True)
        @on_shutdown@
        break
    @on_invoke@
"""

APP = "def handler(event, context):\n    print('handled')\n    return {'ok': True}\n"


def extension(before_register: str = "", after_register: str = "", on_invoke: str = "pass", on_shutdown: str = "pass") -> str:
    return (
        EXTENSION.replace("@before_register@", before_register)
        .replace("@after_register@", after_register)
        .replace("@on_invoke@", on_invoke)
        .replace("@on_shutdown@", on_shutdown)
    )


@pytest.fixture
def make_spec(tmp_path, code_dir):
    made = iter(range(1000))

    def _spec(extensions: dict[str, str], timeout: int = 30, app: str = APP) -> FunctionSpec:
        n = next(made)
        layer = tmp_path / f"layer-{n}"
        (layer / "extensions").mkdir(parents=True)
        for name, text in extensions.items():
            path = layer / "extensions" / name
            path.write_text(text)
            path.chmod(0o755)
        for path in (tmp_path, layer, layer / "extensions"):
            os.chmod(path, 0o755)
        code = tmp_path / f"code-{n}"
        code.mkdir()
        (code / "app.py").write_text(app)
        os.chmod(code, 0o755)
        rec = FunctionRecord(
            name=f"fn-{n}",
            runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
            role="r",
            handler="app.handler",
            code_sha256_hex="0" * 64,
            code_sha256_b64="",
            code_size=1,
            revision_id=f"rev-{n}",
            last_modified="",
            created_ns=0,
            timeout=timeout,
        )
        return FunctionSpec(
            record=rec,
            code_dir=str(code),
            arn=f"arn:aws:lambda:us-east-1:000000000000:function:fn-{n}",
            env={"PATH": "/usr/bin:/bin"},
            log_group="g",
            layers=(str(layer),),
        )

    return _spec


def run_pool(backend, body, **kwargs):
    async def main():
        pool = Pool(backend, concurrency_limit=10, **kwargs)
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            try:
                await body(pool)
            finally:
                nursery.cancel_scope.cancel()

    trio.run(main)


def idle_instance(pool: Pool, spec: FunctionSpec):
    (inst,) = pool._idle[spec.record.revision_id]
    return inst


def test_shutdown_reaches_extensions_when_an_instance_is_reclaimed(backend, make_spec):
    spec = make_spec({"watcher": extension()})

    async def body(pool):
        outcome = await pool.invoke(spec, b"{}")
        assert outcome.error_type is None, outcome.payload
        host = idle_instance(pool, spec).extensions
        pool.drop(spec.record.name)
        while host.log_fd >= 0:  # released once the sandbox is destroyed
            await trio.sleep(0.01)
        assert host.shutdown_log == b"shutdown spindown True\n"

    run_pool(backend, body)


def test_an_extension_s_time_after_the_runtime_is_in_the_duration_and_billed(backend, make_spec):
    spec = make_spec({"slow": extension(on_invoke="time.sleep(0.3)")})

    async def body(pool):
        outcome = await pool.invoke(spec, b"{}")
        assert outcome.error_type is None, outcome.payload
        assert outcome.duration_ns >= 300_000_000
        report = outcome.log.decode().splitlines()[-1]
        duration_ms = float(report.split("Duration: ")[1].split(" ms")[0])
        billed_ms = int(report.split("Billed Duration: ")[1].split(" ms")[0])
        assert duration_ms >= 300 and billed_ms >= 300, report

    run_pool(backend, body)


@pytest.mark.parametrize(
    "ext, error_type, kind",
    [
        (extension(on_invoke="os._exit(3)"), "Extension.Crash", "error"),
        (
            extension(
                on_invoke='call("POST", "/2020-01-01/extension/exit/error", "{}", '
                '{**H, "Lambda-Extension-Function-Error-Type": "Extension.Broken"})'
            ),
            "Extension.ExitError",
            "error",
        ),
    ],
    ids=["crash", "exit-error"],
)
def test_an_extension_that_fails_during_a_call_fails_it_and_its_environment(backend, make_spec, ext, error_type, kind):
    spec = make_spec({"failing": ext})

    async def body(pool):
        first = await pool.invoke(spec, b"{}")
        assert (first.error_type, first.kind) == (error_type, kind), first.payload
        assert json.loads(first.payload)["errorType"] == error_type
        second = await pool.invoke(spec, b"{}")
        assert second.cold  # the failed environment was not reused

    run_pool(backend, body)


@pytest.mark.parametrize(
    "ext, error_type",
    [
        (
            extension(
                after_register='call("POST", "/2020-01-01/extension/init/error", "{}", '
                '{**H, "Lambda-Extension-Function-Error-Type": "Extension.ConfigInvalid"})'
            ),
            "Extension.InitError",
        ),
        (extension(after_register="os._exit(1)"), "Extension.Crash"),
        (extension(before_register="os._exit(1)"), "Extension.Crash"),
        ("not a program\n", "Extension.Crash"),
    ],
    ids=["init-error", "crash-after-register", "crash-before-register", "not-executable-format"],
)
def test_an_extension_that_fails_its_init_fails_the_init(backend, make_spec, ext, error_type):
    spec = make_spec({"failing": ext})

    async def body(pool):
        outcome = await pool.invoke(spec, b"{}")
        assert outcome.error_type == error_type and outcome.kind == "init_error", (outcome.error_type, outcome.payload)

    run_pool(backend, body)


# -- hostile extensions: (what it does, the outcome the platform keeps) --------------

FLOOD = "sys.stdout.write(('x' * 1023 + '\\n') * 30 * 1024); sys.stdout.flush()"
GARBAGE = """
conns = []
for i in range(200):
    try:
        s = socket.create_connection(api.split(":")); s.sendall(b"GARBAGE\\r\\n\\r\\n" if i % 2 else b"GET /x HTTP/1.1\\r\\n"); conns.append(s)
    except OSError:
        pass
s = socket.create_connection(api.split(":"))
s.sendall(b"POST /2020-01-01/extension/register HTTP/1.1\\r\\nLambda-Extension-Name: x\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n")
try:
    for _ in range(64):
        s.sendall(b"10000\\r\\n" + b"y" * 65536 + b"\\r\\n")
except OSError:
    pass
for c in conns:
    c.close()
_call = call
def call(*args, **kwargs):
    # The server drops connections past its cap (32 per sandbox) until it has
    # seen the garbage ones close: this extension's own requests retry.
    for _ in range(200):
        try:
            return _call(*args, **kwargs)
        except (OSError, http.client.HTTPException):
            time.sleep(0.01)
    raise SystemExit("the API never came back")
for bogus in ("nope", "00000000-0000-0000-0000-000000000000"):
    r, _ = call("GET", "/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": bogus})
    assert r.status == 403, r.status
"""
SILENT_LISTENER = """
listener = socket.socket(); listener.bind(("127.0.0.1", 4243)); listener.listen(16)
call("PUT", "/2022-07-01/telemetry", json.dumps({"schemaVersion": "2022-12-13", "types": ["platform", "function", "extension"],
     "buffering": {"timeoutMs": 25}, "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:4243/"}}), H)
"""
SUBSCRIBED_FLOOD = SILENT_LISTENER.replace(
    "listen(16)",
    "listen(16)\nimport threading\n"
    "threading.Thread(target=lambda: [listener.accept()[0].recv(1) for _ in range(100)], daemon=True).start()",
)

HOSTILE = [
    ("never-asks-for-the-next-event", extension(on_invoke="time.sleep(3600)"), "Sandbox.Timedout"),
    ("floods-its-output", extension(on_invoke=FLOOD), None),
    ("floods-telemetry-to-a-listener-that-never-reads", extension(after_register=SUBSCRIBED_FLOOD, on_invoke=FLOOD), None),
    ("sends-garbage-and-bogus-requests", extension(after_register=GARBAGE), None),
    ("subscribes-a-listener-that-never-answers", extension(after_register=SILENT_LISTENER), None),
    ("ignores-shutdown", extension(on_shutdown="time.sleep(3600)"), None),
]


@pytest.mark.parametrize("ext, error_type", [row[1:] for row in HOSTILE], ids=[row[0] for row in HOSTILE])
def test_hostile_extensions(backend, make_spec, ext, error_type):
    spec = make_spec({"hostile": ext}, timeout=3)

    async def body(pool):
        for _ in range(2):
            outcome = await pool.invoke(spec, b"{}")
            assert outcome.error_type == error_type, outcome.payload
            # The call's log is capped outside the sandbox, whatever the extension wrote.
            assert len(outcome.log) <= MAX_CALL_LOG + 64 * 1024
            if error_type is None:
                inst = idle_instance(pool, spec)
                host = inst.extensions
                assert len(host.server._conns) <= api_server.MAX_CONNECTIONS
                for subscriber in host.deliveries.subscribers:
                    assert subscriber.buffer._bytes <= tm.QUEUE_BYTES
        if error_type is None:
            pool.drop(spec.record.name)
            while host.log_fd >= 0:
                await trio.sleep(0.01)

    run_pool(backend, body)
