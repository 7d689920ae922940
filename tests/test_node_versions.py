"""nodejs20.x, nodejs22.x and nodejs24.x "where the host's Node allows":
each runs on a Node.js of its own major version when the host has one;
one the host lacks is refused at CreateFunction with what the host has and
what to do, or runs on another version when the operator maps it
(`--runtime-map`), and says so in its log.

The hosts of this project carry one Node.js (20); which runtime stands for
"missing" is read from what this host has, so the test holds on a host
with more.
"""

from __future__ import annotations

import base64
import json

import pytest
from helpers import ServerProcess, make_zip

from lambdalet.sandbox import languages

ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"
VERSION = "exports.handler = async () => ({ node: process.version, env: process.env.AWS_EXECUTION_ENV });\n"

FOUND = {name: t for name, t in languages.discover()[0].items() if t.language == "node"}
MISSING = [name for name in languages.NODE_RUNTIMES if name not in FOUND]


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """A server that maps the first Node.js runtime this host lacks onto
    the first one it has."""
    if not FOUND:
        pytest.fail("no Node.js on this host: this project's machines have Node.js 20")
    if not MISSING:
        pytest.skip("this host has a Node.js for every Lambda Node.js runtime: nothing to map or refuse")
    have = next(iter(FOUND))
    server = ServerProcess(tmp_path_factory.mktemp("node-map"), "--runtime-map", f"{MISSING[0]}={have}").start()
    yield server, have
    assert server.stop() == 0, "".join(server.output)


def test_each_runtime_the_host_has_runs_on_its_own_major_version(lam, fn_name):
    for i, (runtime, toolchain) in enumerate(FOUND.items()):
        name = f"{fn_name}-{i}"
        lam.create_function(
            FunctionName=name, Runtime=runtime, Role=ROLE, Handler="index.handler", Code={"ZipFile": make_zip({"index.js": VERSION})}
        )
        try:
            lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
            body = json.loads(lam.invoke(FunctionName=name)["Payload"].read())
            assert body["node"] == f"v{toolchain.version}" and body["env"] == f"AWS_Lambda_{runtime}"
        finally:
            lam.delete_function(FunctionName=name)


def test_a_version_the_host_lacks_is_refused_with_what_it_has(lam, fn_name):
    if not MISSING:
        pytest.skip("this host has a Node.js for every Lambda Node.js runtime")
    for runtime in MISSING:
        with pytest.raises(lam.exceptions.InvalidParameterValueException) as caught:
            lam.create_function(
                FunctionName=fn_name, Runtime=runtime, Role=ROLE, Handler="index.handler", Code={"ZipFile": make_zip({"index.js": VERSION})}
            )
        message = caught.value.response["Error"]["Message"]
        major = runtime[len("nodejs") : -2]
        assert f"no Node.js {major} on this host" in message, message
        assert all(f"Node.js {t.version}" in message for t in FOUND.values()), message
        assert "--runtime-map" in message, message


def test_a_mapped_version_runs_on_the_one_the_host_has_and_says_so(mapped):
    server, have = mapped
    lam = server.client()
    runtime = MISSING[0]
    assert any(line.strip().startswith(f"runtime {runtime}:") and have in line for line in server.output), "".join(server.output)
    lam.create_function(
        FunctionName="mapped-node", Runtime=runtime, Role=ROLE, Handler="index.handler", Code={"ZipFile": make_zip({"index.js": VERSION})}
    )
    lam.get_waiter("function_active_v2").wait(FunctionName="mapped-node", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    assert lam.get_function_configuration(FunctionName="mapped-node")["Runtime"] == runtime
    resp = lam.invoke(FunctionName="mapped-node", LogType="Tail")
    body = json.loads(resp["Payload"].read())
    assert body["node"] == f"v{FOUND[have].version}"
    log = base64.b64decode(resp["LogResult"]).decode()
    assert f"Runtime Mapping: {runtime} -> {have}" in log.splitlines()[0], log
