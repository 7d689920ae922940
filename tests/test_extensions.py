"""External extensions and the Telemetry API through the real server.

The extensions are written as vendors write theirs (tests/extensions/):
telemetry_forwarder registers, subscribes its listener to the Telemetry
API and forwards every batch to a collector on the sandbox's loopback
before acknowledging it; the collector (run as an extension, as the
OpenTelemetry collector layer runs) keeps what it gets and hands it out on
GET /dump. They are published as a layer and attached with boto3. A
sandbox cannot reach the host's loopback (sandbox/egress.py), so the test
reads the collector through the function: a call with {"dump": true}
returns everything the collector holds. The platform delivers what a call
left before the next call starts, so the dump holds every event of the
calls before it, in order.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
from helpers import make_zip

ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"
PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
HERE = pathlib.Path(__file__).parent / "extensions"


def extension_layer(lam, name: str, extra: dict[str, str] | None = None) -> str:
    files = {
        "extensions/telemetry-forwarder": (HERE / "telemetry_forwarder.py").read_text(),
        "extensions/collector": (HERE / "collector.py").read_text(),
        **(extra or {}),
    }
    modes = {path: 0o755 for path in files}
    layer = lam.publish_layer_version(LayerName=name[:60], Content={"ZipFile": make_zip(files, modes)})
    return layer["LayerVersionArn"]


PY_HANDLER = """
import json, urllib.request

def handler(event, context):
    print("line one")
    print("line two")
    if event.get("dump"):
        return json.loads(urllib.request.urlopen("http://127.0.0.1:4318/dump").read())
    return {"request": context.aws_request_id}
"""

SHELL_BOOTSTRAP = """#!/bin/sh
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
headers=/tmp/headers
while true; do
  event=$(curl -sS -D "$headers" "$api/next")
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | tr -d '\\r' | cut -d' ' -f2)
  echo "line one"
  echo "line two"
  case "$event" in
    *dump*) curl -sS http://127.0.0.1:4318/dump > /tmp/answer ;;
    *) printf '{"request": "%s"}' "$id" > /tmp/answer ;;
  esac
  curl -sS -X POST --data-binary @/tmp/answer "$api/$id/response" >/dev/null
done
"""


def create(
    lam,
    name: str,
    layers: list[str],
    runtime: str = PY,
    files: dict | None = None,
    handler: str = "app.handler",
    modes: dict | None = None,
    **kwargs,
) -> None:
    lam.create_function(
        FunctionName=name,
        Role=ROLE,
        Runtime=runtime,
        Handler=handler,
        Code={"ZipFile": make_zip(files or {"app.py": PY_HANDLER}, modes)},
        Layers=layers,
        **kwargs,
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def invoke(lam, name: str, payload: dict):
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(payload).encode(), LogType="Tail")
    return resp, json.loads(resp["Payload"].read())


def of_call(events: list[dict], request_id: str) -> list[dict]:
    """The events of one call: from its platform.start to its platform.report."""
    start = next(i for i, e in enumerate(events) if e["type"] == "platform.start" and e["record"]["requestId"] == request_id)
    end = next(i for i, e in enumerate(events) if e["type"] == "platform.report" and e["record"]["requestId"] == request_id)
    return events[start : end + 1]


def check_calls(events: list[dict], request_ids: list[str], prefixed: bool = False) -> None:
    """prefixed: the runtime writes each line with its own prefix
    (Node.js: time, request id, level) before the text."""
    for rid in request_ids:
        call = of_call(events, rid)
        assert [e["type"] for e in call] == ["platform.start", "function", "function", "platform.runtimeDone", "platform.report"], call
        lines = [e["record"] for e in call[1:3]]
        if prefixed:
            assert [line.split("\t")[1:] for line in lines] == [[rid, "INFO", "line one"], [rid, "INFO", "line two"]], lines
        else:
            assert lines == ["line one", "line two"]
        done, report = call[3]["record"], call[4]["record"]
        assert done["requestId"] == rid and done["status"] == "success"
        assert set(done["metrics"]) == {"durationMs", "producedBytes"} and done["metrics"]["producedBytes"] > 0
        assert [s["name"] for s in done["spans"]] == ["responseLatency", "responseDuration"]
        assert report["status"] == "success" and report["metrics"]["memorySizeMB"] == 128
        # The extensions' time is in the call's Duration: never less than the runtime's.
        assert report["metrics"]["durationMs"] >= done["metrics"]["durationMs"]
        assert report["metrics"]["billedDurationMs"] >= report["metrics"]["durationMs"]
        assert call[0]["record"]["tracing"] == done["tracing"] == report["tracing"]
        times = [e["time"] for e in call]
        assert times == sorted(times)


def check_init(events: list[dict]) -> None:
    types = [e["type"] for e in events]
    assert types[0] == "platform.initStart", types
    for kind in ("platform.extension", "platform.telemetrySubscription", "platform.initRuntimeDone", "platform.initReport"):
        assert kind in types, (kind, types)
    assert types.index("platform.initRuntimeDone") < types.index("platform.initReport") < types.index("platform.start")
    names = sorted(e["record"]["name"] for e in events if e["type"] == "platform.extension")
    assert names == ["collector", "telemetry-forwarder"]
    assert any(e["type"] == "extension" and e["record"] == "telemetry-forwarder subscribed" for e in events)
    report = next(e for e in events if e["type"] == "platform.initReport")["record"]
    assert report["status"] == "success" and report["metrics"]["durationMs"] > 0


@pytest.mark.parametrize("runtime", [PY, "python3.12"], ids=["server-python", "python3.12"])
def test_a_python_function_s_extension_receives_every_log_line_and_platform_event_in_order(lam, fn_name, runtime):
    layer = extension_layer(lam, fn_name)
    create(lam, fn_name, [layer], runtime=runtime)
    rids = [invoke(lam, fn_name, {})[1]["request"] for _ in range(3)]
    resp, events = invoke(lam, fn_name, {"dump": True})
    assert "FunctionError" not in resp, events
    check_init(events)
    check_calls(events, rids)
    lam.delete_function(FunctionName=fn_name)


def test_a_custom_runtime_s_extension_shares_the_runtime_api_s_port(lam, fn_name):
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed: the shell bootstrap uses it (Debian's curl package)")
    layer = extension_layer(lam, fn_name)
    create(
        lam, fn_name, [layer], runtime="provided.al2023", files={"bootstrap": SHELL_BOOTSTRAP}, handler="none", modes={"bootstrap": 0o755}
    )
    rids = [invoke(lam, fn_name, {})[1]["request"] for _ in range(2)]
    resp, events = invoke(lam, fn_name, {"dump": True})
    assert "FunctionError" not in resp, events
    check_init(events)
    check_calls(events, rids)
    lam.delete_function(FunctionName=fn_name)


NODE_HANDLER = """
exports.handler = async (event, context) => {
  console.log("line one");
  console.log("line two");
  if (event.dump) {
    const answer = await fetch("http://127.0.0.1:4318/dump");
    return await answer.json();
  }
  return {request: context.awsRequestId};
};
"""


def test_a_node_function_s_extension_receives_the_same_stream(lam, fn_name):
    layer = extension_layer(lam, fn_name)
    create(lam, fn_name, [layer], runtime="nodejs20.x", files={"index.js": NODE_HANDLER}, handler="index.handler")
    rids = [invoke(lam, fn_name, {})[1]["request"] for _ in range(2)]
    resp, events = invoke(lam, fn_name, {"dump": True})
    assert "FunctionError" not in resp, events
    check_init(events)
    check_calls(events, rids, prefixed=True)
    lam.delete_function(FunctionName=fn_name)


def test_json_log_format_gives_function_records_as_objects(lam, fn_name):
    layer = extension_layer(lam, fn_name)
    src = (
        "import json, logging, urllib.request\n"
        "def handler(event, context):\n"
        "    logging.getLogger().info('structured')\n"
        "    if event.get('dump'):\n"
        "        return json.loads(urllib.request.urlopen('http://127.0.0.1:4318/dump').read())\n"
        "    return {'request': context.aws_request_id}\n"
    )
    create(lam, fn_name, [layer], files={"app.py": src}, LoggingConfig={"LogFormat": "JSON"})
    rid = invoke(lam, fn_name, {})[1]["request"]
    _, events = invoke(lam, fn_name, {"dump": True})
    call = of_call(events, rid)
    records = [e["record"] for e in call if e["type"] == "function"]
    assert len(records) == 1 and records[0]["message"] == "structured" and records[0]["level"] == "INFO", records
    lam.delete_function(FunctionName=fn_name)


@pytest.mark.cli
@pytest.mark.skipif(shutil.which("aws") is None, reason="the aws CLI is not installed")
def test_the_readme_s_extension_example_runs_as_written(server, lam, tmp_path):
    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = re.search(r"<!-- extensions example[^>]*-->\n```sh\n(.*?)```", readme, re.S).group(1)
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL=server.url,
        AWS_SHARED_CREDENTIALS_FILE=str(server.data_dir / "credentials"),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_PAGER="",
    )
    env.pop("AWS_PROFILE", None)
    proc = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    try:
        assert proc.returncode == 0, proc.stderr
        printed = [line.split(" ", 2)[1] for line in proc.stdout.splitlines() if line.startswith("telemetry: ")]
        assert printed[:4] == ["platform.start", "function", "platform.runtimeDone", "platform.report"], proc.stdout
        assert 'telemetry: function "hello"' in proc.stdout
    finally:
        lam.delete_function(FunctionName="watched")
