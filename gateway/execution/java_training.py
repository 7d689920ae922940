"""The run that records a JDK's class-data sharing archive for the Java
runtime (java_build.py): the runtime as a sandbox starts it, serving a
few calls of the platform's own handler (runtime/java's Warmup) through a
Runtime API on loopback, then stopped; the JVM writes the archive as it
exits (-XX:ArchiveClassesAtExit).

So the archive holds what a first call loads, not only the runtime's jars:
the JDK's classes the RIC and its serializer use, the lambda forms and
proxies they spin. Only platform code runs in it (the JDK, AWS's RIC, the
launcher), outside any function's sandbox: no function's JVM ever writes
an archive another one reads.

The JVM sees the built runtime at /var/runtime/java, as in a sandbox (a
private mount namespace over a tmpfs /var), so that it accepts the archive
there. Its classpath and options are a cold start's (languages.py).
"""

from __future__ import annotations

import http.server
import json
import os
import pathlib
import subprocess
import tempfile
import threading
import time
from typing import IO

from ...sandbox.languages import Toolchain
from . import languages

HANDLER = "lambdalet.runtime.Warmup::handleRequest"
RUN_TIMEOUT_S = 120.0
# Each is one call's event; the last makes the handler throw.
EVENTS = (
    {"rawPath": "/", "headers": {"host": "warm-up"}, "body": "hello", "isBase64Encoded": False},
    {"key": "value", "n": 1, "list": [1, 2.5, True, None]},
    {"fail": True},
)
_PREFIX = "/2018-06-01/runtime/"


class _Api:
    """A Runtime API for the run: the events in order, then no more."""

    def __init__(self) -> None:
        self.events = list(EVENTS)
        self.answers: list[tuple[str, bytes]] = []  # (path, body)
        self.exhausted = threading.Event()  # a `next` found no event left: the calls are over
        self.stopping = threading.Event()


def _handler_class(api: _Api) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if not self.path.startswith(_PREFIX + "invocation/next"):
                self._reply(404, b"{}")
                return
            if not api.events:
                api.exhausted.set()
                api.stopping.wait(RUN_TIMEOUT_S)
                self.close_connection = True
                return
            n = len(EVENTS) - len(api.events)
            body = json.dumps(api.events.pop(0)).encode()
            self._reply(
                200,
                body,
                {
                    "Lambda-Runtime-Aws-Request-Id": f"warm-up-{n}",
                    "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 60_000),
                    "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:000000000000:function:warm-up",
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
                },
            )

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            api.answers.append((self.path, body))
            self._reply(202, b'{"status":"OK"}')

        def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def function_env(runtime: str) -> dict[str, str]:
    """The variables a Java function's runtime finds (gateway/execution/specs.py's kind)."""
    return {
        "_HANDLER": HANDLER,
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": "warm-up",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/warm-up",
        "AWS_LAMBDA_LOG_STREAM_NAME": "warm-up",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
    }


def training_argv(launch: languages.Launch, archive_out: str) -> list[str]:
    """A cold start's argv that records an archive instead of reading one."""
    argv = [a for a in launch.argv if not a.startswith("-XX:SharedArchiveFile=")]
    return [f"-XX:ArchiveClassesAtExit={archive_out}", *argv]


class TrainingError(RuntimeError):
    pass


def record(built: pathlib.Path, toolchain: Toolchain, archive_out: pathlib.Path) -> list[tuple[str, bytes]]:
    """Runs the training JVM over the built runtime; the archive is at
    archive_out when it returns. Returns the answers the runtime posted.
    Raises TrainingError when the run does not serve its calls."""
    launch = languages.launch_for(toolchain, 1024)
    answers = serve_calls(built, toolchain, training_argv(launch, str(archive_out)))
    if not archive_out.exists():
        raise TrainingError("the training JVM wrote no archive")
    return answers


def serve_calls(built: pathlib.Path, toolchain: Toolchain, jvm_argv: list[str]) -> list[tuple[str, bytes]]:
    """Runs the Java runtime with jvm_argv (a cold start's, or another) over
    the built runtime until it has served EVENTS; returns what it posted."""
    launch = languages.launch_for(toolchain, 1024)
    api = _Api()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(api))
    server.daemon_threads = True
    serving = threading.Thread(target=server.serve_forever, name="java-training-api", daemon=True)
    serving.start()
    fn_env = function_env(toolchain.runtime)
    address = f"127.0.0.1:{server.server_address[1]}"
    env = {**languages.exec_env(launch, fn_env), "AWS_LAMBDA_RUNTIME_API": address}
    script = (
        "mount -t tmpfs -o size=1m,mode=755 lambdalet-train /var && "
        f'mkdir -p {languages.JAVA_DIR} /var/task && mount --bind "$1" {languages.JAVA_DIR} && '
        'shift && cd /var/task && exec "$@"'
    )
    argv = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        argv[1:1] = ["--map-root-user"]
    command = [*argv, "sh", "-c", script, "sh", str(built), launch.program, *jvm_argv]
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors, env=env)
        except OSError as exc:
            server.shutdown()
            server.server_close()
            raise TrainingError(f"{command[0]}: {exc}") from None
        try:
            _serve(proc, api, launch, fn_env, address, errors)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdin is not None:
                proc.stdin.close()
            api.stopping.set()
            server.shutdown()
            server.server_close()
    return api.answers


def _serve(proc: subprocess.Popen, api: _Api, launch: languages.Launch, fn_env: dict[str, str], address: str, errors: IO[bytes]) -> None:
    """Configures the runtime, waits for its calls to be over, stops it."""
    assert proc.stdin is not None
    try:
        proc.stdin.write(languages.config_line(launch, fn_env, address))
        proc.stdin.close()
    except BrokenPipeError:
        pass
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not api.exhausted.wait(0.1):
        if proc.poll() is not None or time.monotonic() > deadline:
            errors.seek(0)
            tail = errors.read().decode(errors="replace")[-2000:]
            raise TrainingError(f"the Java runtime stopped before its calls were over: {tail}")
    # Stopped by SIGTERM, a JVM exits as by System.exit: it writes an archive it records.
    proc.terminate()
    try:
        proc.wait(RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise TrainingError("the training JVM did not exit") from None
