"""Each function runs on the Python its Runtime names, or is refused.

Against real servers and this host's real interpreters: the machines this
project runs on carry Python 3.9 to 3.13 (pyenv), so a version missing here
is a failure, not a skip.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import pathlib
import random
import subprocess
import sys

import botocore.exceptions
import botocore.session
import pytest
from helpers import ServerProcess, descendants_of, lambdalet_argv, make_zip

from lambdalet.gateway.functions.runtimes import (
    BLOCKED_BY_AWS,
    MODEL_PYTHON_RUNTIMES,
    RuntimeCatalog,
    RuntimeConfigError,
)
from lambdalet.runtime import msgspec_fallback
from lambdalet.runtime import protocol as real_protocol
from lambdalet.sandbox import interpreters

ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"
OWN = f"python{sys.version_info[0]}.{sys.version_info[1]}"
# What this project's hosts carry besides the server's own Python.
EXPECTED = ("python3.9", "python3.10", "python3.11", "python3.12", "python3.13")
MISSING = "python3.15"  # in Lambda's model, on no host of ours
REPORT_FN = (
    "import os, sys\n"
    "def handler(event, context):\n"
    "    return {'version': sys.version.split()[0], 'env': os.environ['AWS_EXECUTION_ENV'],\n"
    "            'codec': 'msgspec' if 'msgspec' in sys.modules else 'fallback'}\n"
)


# -- pure parts ---------------------------------------------------------------


def test_python_runtimes_are_those_of_lambdas_model():
    loader = botocore.session.get_session().get_component("data_loader")
    model = loader.load_service_model("lambda", "service-2")
    python = tuple(r for r in model["shapes"]["Runtime"]["enum"] if r.startswith("python"))
    assert sorted(python, key=lambda r: [int(p) for p in r[6:].split(".")]) == list(MODEL_PYTHON_RUNTIMES)
    assert set(BLOCKED_BY_AWS) < set(MODEL_PYTHON_RUNTIMES)


def _fallback_protocol():
    """runtime/protocol.py as an interpreter without msgspec loads it."""
    path = pathlib.Path(real_protocol.__file__)
    spec = importlib.util.spec_from_file_location("lambdalet.runtime._protocol_without_msgspec", path)
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("msgspec")
    sys.modules["msgspec"] = None  # type: ignore[assignment]  # `import msgspec` raises ImportError
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules["msgspec"] = saved
    assert module.msgspec is msgspec_fallback
    return module


def _messages(p, rng: random.Random) -> list:
    """One of each message, its fields filled by their annotations (the
    protocol's own), with values at msgpack's size boundaries."""

    def text() -> str:
        return "".join(rng.choice("aé\u2603\U0001f600x/$") for _ in range(rng.choice((0, 1, 31, 32, 300))))

    def blob() -> bytes:
        return rng.randbytes(rng.choice((0, 1, 255, 256, 70_000)))

    def number() -> int:
        return rng.choice((0, 1, 127, 128, 255, 256, 65_535, 65_536, 2**32, 2**63 - 1, 2**64 - 1, -1, -32, -33, -129, -(2**31), -(2**63)))

    makers = {
        "str": text,
        "bytes": blob,
        "int": number,
        "bool": lambda: rng.choice((True, False)),
        "Optional[str]": lambda: rng.choice((None, text())),
        "dict[str, str]": lambda: {text(): text() for _ in range(rng.choice((0, 3, 20)))},
        "list[tuple[int, int]]": lambda: [(number(), number()) for _ in range(rng.choice((0, 2, 16)))],
        "list[str]": lambda: [text() for _ in range(rng.choice((0, 2, 16)))],
    }
    out = []
    for name in ("Init", "Invoke", "Bootstrap", "Ready", "InitOk", "InitError", "Result", "Launched"):
        cls = getattr(p, name)
        annotations = getattr(real_protocol, name).__annotations__
        out.append(cls(**{field: makers[annotations[field]]() for field in cls.__struct_fields__}))
    return out


def test_the_pure_python_codec_writes_and_reads_what_msgspec_does():
    fallback = _fallback_protocol()
    rng = random.Random(7)
    for _ in range(40):
        for mine in _messages(fallback, random.Random(rng.random())):
            real_cls = getattr(real_protocol, type(mine).__name__)
            real = real_cls(**{f: getattr(mine, f) for f in mine.__struct_fields__})
            assert fallback.encode(mine) == real_protocol.encode(real)
            # The worker reads what goes to it; the gateway (msgspec) reads what comes back.
            if type(mine).__name__ in ("Init", "Invoke", "Bootstrap"):
                (back,) = fallback.FrameReader("to_worker").feed(real_protocol.encode(real))
                assert back == mine
            else:
                (forth,) = real_protocol.FrameReader("from_worker").feed(fallback.encode(mine))
                assert forth == real


def test_the_pure_python_codec_refuses_garbage_with_decode_errors():
    fallback = _fallback_protocol()
    rng = random.Random(11)
    good = fallback.encode(fallback.Invoke("r", b"{}", 5, "arn", None))[4:]
    decode = msgspec_fallback.msgpack.Decoder(fallback.ToWorker).decode
    samples = [rng.randbytes(rng.randrange(1, 40)) for _ in range(2000)]
    samples += [good[:i] for i in range(len(good))] + [good + b"\x00", b"\x91" * 200 + b"\xc0", b"\xdd\xff\xff\xff\xff"]
    for data in samples:
        try:
            decode(data)
        except msgspec_fallback.DecodeError:
            pass


def test_a_mapping_must_name_a_runtime_and_an_interpreter_this_host_has():
    found, _ = interpreters.discover()
    catalog = RuntimeCatalog(found, {"python3.14": "python3.13"})
    resolved = catalog.resolve("python3.14")
    assert resolved.mapped and resolved.interpreter.runtime == "python3.13"
    assert resolved.execution_env == "AWS_Lambda_python3.13"
    for bad, words in (
        (("python3.14", "python3.99"), "has no python3.99"),
        (("python3.8", "python3.13"), "no longer accepts python3.8"),
        (("nodejs20.x", "python3.13"), "only be mapped onto another version of its language"),
        (("ruby3.3", "python3.13"), "not a Lambda Python runtime"),
    ):
        with pytest.raises(RuntimeConfigError, match=words):
            RuntimeCatalog(found, dict([bad]))


# -- the host's interpreters -----------------------------------------------------


def test_every_python_lambda_offers_is_found_on_this_host():
    found, notes = interpreters.discover()
    assert set(EXPECTED) <= set(found), (sorted(found), notes)
    for name, interpreter in found.items():
        out = subprocess.run(
            [interpreter.path, "-I", "-S", "-c", "import sys;print(sys.version.split()[0])"], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert out == interpreter.version and name == "python" + ".".join(out.split(".")[:2])
        assert os.path.isfile(os.path.join(interpreter.prefix, "bin", os.path.basename(interpreter.path)))
    assert found[OWN].found == "this server"


def test_a_named_interpreter_must_be_the_version_it_is_named_for():
    other = interpreters.discover()[0]["python3.12"]
    with pytest.raises(interpreters.InterpreterError, match="is Python 3.12.*not python3.13"):
        interpreters.discover({"python3.13": other.path})
    chosen, _ = interpreters.discover({"python3.12": other.path})
    assert chosen["python3.12"].found == "--python" and chosen["python3.12"].path == other.path


def test_shims_on_path_are_not_taken_for_interpreters(tmp_path, monkeypatch):
    shim = tmp_path / "python3.12"
    shim.write_text("#!/bin/sh\nexec /bin/false\n")
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert all(path != str(shim) for _, path, _ in interpreters.candidates())


# -- through a real server ---------------------------------------------------------


@pytest.fixture(scope="module")
def mapped_server(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("runtimes"), "--runtime-map", "python3.14=python3.13").start()
    yield srv
    assert srv.stop() == 0, "".join(srv.output)


def _create(lam, name: str, runtime: str, source: str = REPORT_FN) -> dict:
    return lam.create_function(
        FunctionName=name, Role=ROLE, Handler="app.handler", Runtime=runtime, Code={"ZipFile": make_zip({"app.py": source})}
    )


def _call(lam, name: str) -> tuple[dict, list[str]]:
    resp = lam.invoke(FunctionName=name, LogType="Tail")
    assert "FunctionError" not in resp, resp["Payload"].read()
    return json.loads(resp["Payload"].read()), base64.b64decode(resp["LogResult"]).decode().splitlines()


@pytest.mark.parametrize("runtime", EXPECTED)
def test_a_function_runs_on_the_python_its_runtime_names(mapped_server, runtime):
    lam = mapped_server.client()
    version = interpreters.discover()[0][runtime].version
    name = f"on-{runtime.replace('.', '-')}"
    _create(lam, name, runtime)
    out, log = _call(lam, name)
    assert out["version"] == version
    assert out["env"] == f"AWS_Lambda_{runtime}"
    assert log[0] == f"INIT_START Runtime Version: python:{version}"
    assert lam.get_function_configuration(FunctionName=name)["Runtime"] == runtime
    out, log = _call(lam, name)  # warm: same interpreter, no second INIT_START
    assert out["version"] == version and not log[0].startswith("INIT_START")
    # Changing the Runtime moves the function to that interpreter.
    lam.update_function_configuration(FunctionName=name, Runtime=OWN if runtime != OWN else "python3.13")
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    out, _ = _call(lam, name)
    assert out["env"] != f"AWS_Lambda_{runtime}" and not out["version"].startswith(version.rsplit(".", 1)[0] + ".")


def test_a_version_the_host_lacks_is_refused_with_what_it_has(mapped_server):
    lam = mapped_server.client()
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        _create(lam, "wants-missing", MISSING)
    error = caught.value.response["Error"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Code"] == "InvalidParameterValueException"
    message = error["Message"]
    for runtime in EXPECTED:
        assert f"{runtime} ({interpreters.discover()[0][runtime].version})" in message
    assert f"--runtime-map {MISSING}=" in message and f"--python {MISSING}=" in message
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName="wants-missing")
    # Nor can an existing function be moved there; it keeps what it had.
    _create(lam, "stays-put", "python3.12")
    with pytest.raises(botocore.exceptions.ClientError, match="not available on this server"):
        lam.update_function_configuration(FunctionName="stays-put", Runtime=MISSING)
    assert lam.get_function_configuration(FunctionName="stays-put")["Runtime"] == "python3.12"


def test_runtimes_aws_has_retired_are_refused_as_aws_refuses_them(mapped_server):
    lam = mapped_server.client()
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        _create(lam, "too-old", "python3.8")
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert "The runtime parameter of python3.8 is no longer supported" in caught.value.response["Error"]["Message"]


def test_a_mapped_runtime_runs_and_says_so(mapped_server):
    lam = mapped_server.client()
    on = interpreters.discover()[0]["python3.13"].version
    _create(lam, "mapped-fn", "python3.14")
    assert lam.get_function_configuration(FunctionName="mapped-fn")["Runtime"] == "python3.14"
    out, log = _call(lam, "mapped-fn")
    # What runs is what the function is told: never 3.14 on a 3.13.
    assert out["version"] == on and out["env"] == "AWS_Lambda_python3.13"
    assert log[0] == (
        f"INIT_START Runtime Version: python:{on}\tRuntime Mapping: python3.14 -> python3.13 "
        "(lambdalet serve --runtime-map python3.14=python3.13)"
    )
    banner = "".join(mapped_server.output)
    assert "runtime python3.14: MAPPED onto python3.13" in banner
    # The stored log stream has it too.
    env = dict(os.environ, LAMBDALET_ENDPOINT=mapped_server.url, LAMBDALET_DATA_DIR=str(mapped_server.data_dir))
    stored = subprocess.run(lambdalet_argv("logs", "mapped-fn"), capture_output=True, text=True, env=env, timeout=60)
    assert "Runtime Mapping: python3.14 -> python3.13" in stored.stdout, stored.stderr


def test_doctor_lists_the_runtimes_and_the_mapped_functions(mapped_server):
    lam = mapped_server.client()
    _create(lam, "doctor-mapped", "python3.14")
    _create(lam, "doctor-plain", "python3.12")
    proc = subprocess.run(lambdalet_argv("--data-dir", str(mapped_server.data_dir), "doctor"), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    found = interpreters.discover()[0]
    for runtime in EXPECTED:
        assert any(l.strip().startswith(f"runtime {runtime}: Python {found[runtime].version} at ") for l in lines), proc.stdout
    (mapped,) = [l for l in lines if l.strip().startswith("runtime python3.14:")]
    assert "MAPPED onto python3.13" in mapped and "doctor-mapped" in mapped
    (plain,) = [l for l in lines if l.strip().startswith("runtime python3.12:")]
    assert "doctor-plain" in plain and "deprecated" not in plain
    (old,) = [l for l in lines if l.strip().startswith("runtime python3.9:")]
    assert "deprecated by AWS" in old


def test_a_stored_function_whose_runtime_is_gone_fails_as_aws_says(tmp_path):
    srv = ServerProcess(tmp_path, "--runtime-map", "python3.14=python3.13").start()
    try:
        _create(srv.client(), "was-mapped", "python3.14")
    finally:
        assert srv.stop() == 0
    srv = ServerProcess(tmp_path).start()  # the same data dir, no mapping now
    try:
        lam = srv.client()
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            lam.invoke(FunctionName="was-mapped")
        assert caught.value.response["Error"]["Code"] == "InvalidRuntimeException"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 502
        assert "--runtime-map python3.14=" in caught.value.response["Error"]["Message"]
        doctor = subprocess.run(lambdalet_argv("--data-dir", str(tmp_path), "doctor"), capture_output=True, text=True, timeout=120)
        (line,) = [l for l in doctor.stdout.splitlines() if l.strip().startswith("runtime python3.14:")]
        assert "CANNOT RUN" in line and "was-mapped" in line
    finally:
        assert srv.stop() == 0


def test_a_bad_runtime_option_stops_the_server_with_a_reason(tmp_path):
    for args, words in (
        (("--runtime-map", "python3.14=python3.99"), "this host has no python3.99"),
        (("--python", "python3.13=/usr/bin/true"), "not a Python 3 interpreter"),
        (("--python", "python3.13"), "expected NAME=VALUE"),
    ):
        proc = subprocess.run(
            lambdalet_argv("serve", "--port", "0", "--data-dir", str(tmp_path), *args), capture_output=True, text=True, timeout=60
        )
        assert proc.returncode != 0 and words in proc.stderr, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_a_python3_x_that_is_another_version_is_not_taken_for_it(tmp_path, monkeypatch):
    """A `python3.14` on PATH that is really a 3.13 (a symlink, a wrapper
    someone renamed) is passed over, said so at start-up, and python3.14
    stays refused: never a version reported that is not running."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3.14").symlink_to(interpreters.discover()[0]["python3.13"].path)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    srv = ServerProcess(tmp_path / "data").start()
    try:
        banner = "".join(srv.output)
        assert "runtime candidate skipped: " in banner and "is Python 3.13" in banner and "not python3.14" in banner
        assert "runtime python3.14:" not in banner
        with pytest.raises(botocore.exceptions.ClientError, match="not available on this server"):
            _create(srv.client(), "not-really-314", "python3.14")
    finally:
        assert srv.stop() == 0


def test_plain_process_workers_run_the_named_python_too(tmp_path):
    srv = ServerProcess(tmp_path, "--sandbox", "process").start()
    try:
        lam = srv.client()
        _create(lam, "plain-312", "python3.12")
        out, _ = _call(lam, "plain-312")
        assert out["version"] == interpreters.discover()[0]["python3.12"].version
    finally:
        assert srv.stop() == 0


# -- installed builds: each version forks from a zygote of its own ----------------


@pytest.fixture(scope="module")
def deps_cache(tmp_path_factory):
    """msgspec and cffi for Python 3.12 and 3.13, installed as a user would
    (`lambdalet runtimes install`, from the package index)."""
    cache = tmp_path_factory.mktemp("cache")
    env = dict(os.environ, LAMBDALET_CACHE_DIR=str(cache))
    proc = subprocess.run(
        lambdalet_argv("runtimes", "install", "python3.12", "python3.13"), capture_output=True, text=True, env=env, timeout=900
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cache


def test_installed_builds_give_each_version_its_own_zygote(tmp_path, deps_cache, monkeypatch):
    monkeypatch.setenv("LAMBDALET_CACHE_DIR", str(deps_cache))
    srv = ServerProcess(tmp_path).start()
    try:
        banner = "".join(srv.output)
        for runtime in ("python3.12", "python3.13"):
            (line,) = [l for l in banner.splitlines() if l.strip().startswith(f"runtime {runtime}:")]
            assert "workers: forked from its zygote; frames: msgspec" in line, line
        assert "frames: pure Python" in next(l for l in banner.splitlines() if "runtime python3.10:" in l)
        lam = srv.client()
        found = interpreters.discover()[0]
        for runtime in ("python3.12", "python3.13", OWN):
            _create(lam, f"z-{runtime.replace('.', '-')}", runtime)
            out, _ = _call(lam, f"z-{runtime.replace('.', '-')}")
            assert out == {"version": found[runtime].version, "env": f"AWS_Lambda_{runtime}", "codec": "msgspec"}
        zygotes = {}
        for pid, _ in descendants_of(srv.proc.pid):
            try:
                argv = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(b"lambdalet.sandbox.zygote" in a for a in argv):
                zygotes[os.path.basename(argv[0].decode())] = pid
        assert {"python3.12", "python3.13", OWN} <= set(zygotes), zygotes
    finally:
        assert srv.stop() == 0


def test_runtimes_lists_what_this_host_runs(deps_cache):
    env = dict(os.environ, LAMBDALET_CACHE_DIR=str(deps_cache))
    proc = subprocess.run(lambdalet_argv("runtimes"), capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("\t")[0]: line for line in proc.stdout.splitlines() if "\t" in line}
    assert set(EXPECTED) <= set(rows)
    assert "workers: zygote" in rows["python3.12"] and "frames: msgspec" in rows["python3.12"]
    assert "the zygote needs 3.10 or later" in rows["python3.9"]


def test_the_runtime_runs_on_python_3_9_without_msgspec(tmp_path):
    """The oldest Python Lambda offers imports the runtime and speaks the
    frames (the pure-Python codec) with nothing but its stdlib."""
    py39 = interpreters.discover()[0]["python3.9"].path
    root = tmp_path / "root" / "lambdalet"
    root.mkdir(parents=True)
    (root / "runtime").symlink_to(pathlib.Path(real_protocol.__file__).parent)
    probe = (
        "import sys;sys.path.insert(0,sys.argv[1]);from lambdalet.runtime import worker, protocol as p;"
        "m=p.FrameReader('to_worker').feed(sys.stdin.buffer.read());"
        "sys.stdout.buffer.write(p.encode(p.Result(m[0].request_id,m[0].payload,None,b'out',[(3,7)])))"
    )
    frame = real_protocol.encode(real_protocol.Invoke("req", b'{"k": 1}', 9, "arn", None))
    out = subprocess.run([py39, "-I", "-S", "-c", probe, str(tmp_path / "root")], input=frame, capture_output=True, check=True).stdout
    (result,) = real_protocol.FrameReader("from_worker").feed(out)
    assert result == real_protocol.Result("req", b'{"k": 1}', None, b"out", [(3, 7)])
