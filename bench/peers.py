"""The peers and floors lambdalet is measured against, started in the same run.

- serverless-offline (serverless@3 + serverless-offline@13, pinned below),
  serving the same Python handler through an httpApi route, warm.
- a bare trio + h11 hello-world server: what a trio HTTP server costs
  before any function runs.
- `python3 -I -S -c pass`: the cold-start floor.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile
import time

from .harness import PY, free_port, http_get_once

SERVERLESS = "serverless@3.40.0"
SERVERLESS_OFFLINE = "serverless-offline@13.10.1"
CACHE = pathlib.Path(os.environ.get("LAMBDALET_BENCH_CACHE", pathlib.Path.home() / ".cache" / "lambdalet-bench"))

SLS_YML = """service: peer
frameworkVersion: '3'
provider:
  name: aws
  runtime: {runtime}
plugins:
  - serverless-offline
functions:
  hello:
    handler: handler.hello
    events:
      - httpApi:
          path: /hello
          method: get
custom:
  serverless-offline:
    noPrependStageInUrl: true
"""
SLS_HANDLER = "def hello(event, context):\n    return {'statusCode': 200, 'body': 'hello'}\n"


def install_serverless_offline() -> pathlib.Path | None:
    """npm-installs the pinned peer once into a cache; None without npm."""
    npm = shutil.which("npm")
    if npm is None:
        return None
    home = CACHE / "serverless-offline"
    marker = home / ".installed"
    want = f"{SERVERLESS} {SERVERLESS_OFFLINE}"
    if marker.exists() and marker.read_text() == want:
        return home
    home.mkdir(parents=True, exist_ok=True)
    (home / "package.json").write_text('{"name": "lambdalet-bench-peer", "private": true}\n')
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", SERVERLESS, SERVERLESS_OFFLINE],
        cwd=home,
        check=True,
        timeout=900,
        stdout=subprocess.DEVNULL,
    )
    marker.write_text(want)
    return home


class ServerlessOffline:
    def __init__(self, home: pathlib.Path, runtime: str) -> None:
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="sls-peer-"))
        (self.dir / "serverless.yml").write_text(SLS_YML.format(runtime=runtime))
        (self.dir / "handler.py").write_text(SLS_HANDLER)
        (self.dir / "node_modules").symlink_to(home / "node_modules")
        self.port = free_port()
        env = dict(os.environ, SLS_TELEMETRY_DISABLED="1", SLS_NOTIFICATIONS_MODE="off", SLS_DEPRECATION_DISABLE="*")
        # serverless-offline runs the handler with the first python3 on PATH;
        # give it the same interpreter lambdalet uses.
        bindir = self.dir / "bin"
        bindir.mkdir()
        (bindir / "python3").symlink_to(PY)
        (bindir / "python").symlink_to(PY)
        env["PATH"] = f"{bindir}:{env.get('PATH', '')}"
        self.proc = subprocess.Popen(
            [
                "node",
                str(home / "node_modules" / "serverless" / "bin" / "serverless.js"),
                "offline",
                "start",
                "--httpPort",
                str(self.port),
                "--lambdaPort",
                str(free_port()),
            ],
            cwd=self.dir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}/hello"
        deadline = time.monotonic() + 120
        while True:
            try:
                http_get_once(self.url)
                break
            except (OSError, RuntimeError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("serverless-offline did not start") from None
                time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


H11_SERVER = r"""
import sys, trio, h11
BODY = b"hello"
async def conn(stream):
    try:
        await serve(stream)
    except (trio.BrokenResourceError, h11.RemoteProtocolError):
        pass  # the load tool hung up mid-response at the end of its run
async def serve(stream):
    c = h11.Connection(h11.SERVER)
    while True:
        while True:
            ev = c.next_event()
            if ev is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                c.receive_data(data)
                if not data:
                    return
                continue
            break
        if isinstance(ev, h11.Request):
            while not isinstance(c.next_event(), (h11.EndOfMessage,)):
                pass
            await stream.send_all(c.send(h11.Response(status_code=200, headers=[("content-length", str(len(BODY)))])))
            await stream.send_all(c.send(h11.Data(data=BODY)) + c.send(h11.EndOfMessage()))
            if c.our_state is h11.MUST_CLOSE:
                return
            c.start_next_cycle()
        elif isinstance(ev, h11.ConnectionClosed):
            return
trio.run(lambda: trio.serve_tcp(conn, int(sys.argv[1]), host="127.0.0.1"))
"""


# No HTTP parse at all: a canned answer to whatever arrives. What a load
# at c=16 measures against it is the load generator's own cost and tail,
# with the machine's other load (the tool runs in one Python thread too).
RAW_SERVER = r"""
import socket, sys, trio
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
async def conn(stream):
    stream.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := await stream.receive_some(65536):
        await stream.send_all(ANSWER)
        if b"Connection: close" in data:  # the start-up probe's request
            return
trio.run(lambda: trio.serve_tcp(conn, int(sys.argv[1]), host="127.0.0.1"))
"""


class TrioH11Floor:
    SOURCE = H11_SERVER

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([PY, "-c", self.SOURCE, str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}/"
        deadline = time.monotonic() + 30
        while True:
            try:
                http_get_once(self.url)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the {type(self).__name__} server did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class RawSocketFloor(TrioH11Floor):
    SOURCE = RAW_SERVER


def python_start_ms(runs: int = 30, python: str | None = None) -> list[float]:
    """Wall time of `python3 -I -S -c pass` (or of another interpreter) by
    its resolved path, spawned without a shell."""
    python = python or PY
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        pid = os.posix_spawn(python, [python, "-I", "-S", "-c", "pass"], os.environ)
        os.waitpid(pid, 0)
        out.append((time.perf_counter() - started) * 1000)
    return out
