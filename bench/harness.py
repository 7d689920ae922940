"""Shared plumbing: a lambdalet server under test, functions in it, and
the load tools."""

from __future__ import annotations

import configparser
import io
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile

import boto3
import botocore.config

from lambdalet.sandbox import proc_stat

# Not realpath: a venv's interpreter is a symlink whose target cannot see
# the venv's packages (docs/architecture.md, host facts).
PY = sys.executable
RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ROLE = "arn:aws:iam::123456789012:role/bench"
HELLO = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'hello'}\n"


def zip_of(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lambdalet:
    """`lambdalet serve` in a subprocess with a throwaway data dir."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, module: str = "lambdalet.gateway.cli") -> None:
        self.tmp = tempfile.mkdtemp(prefix="lambdalet-bench-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [PY, "-m", module, "serve", "--port", str(self.port), "--data-dir", self.tmp, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None  # stdout=PIPE
        banner: list[str] = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("lambdalet did not start:\n" + "".join(banner))
            banner.append(line)
            if line.startswith("  export AWS_ENDPOINT_URL="):
                break
        self.banner = "".join(banner)
        found = re.search(r"sandbox backend: (\S+)", self.banner)
        if found is None:
            raise RuntimeError("lambdalet's banner names no sandbox backend:\n" + self.banner)
        self.backend = found.group(1)
        parser = configparser.ConfigParser()
        parser.read(os.path.join(self.tmp, "credentials"))
        self.client = boto3.client(
            "lambda",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=parser["default"]["aws_access_key_id"],
            aws_secret_access_key=parser["default"]["aws_secret_access_key"],
            config=botocore.config.Config(retries={"max_attempts": 1}, max_pool_connections=32),
        )

    def function(self, name: str, source: str = HELLO, memory: int = 1024, runtime: str = RUNTIME) -> str:
        """Deploys a function and returns its public URL."""
        self.client.create_function(
            FunctionName=name,
            Runtime=runtime,
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": zip_of({"app.py": source})},
            MemorySize=memory,
        )
        return self.public_url(name)

    def public_url(self, name: str) -> str:
        """A function URL anyone may call: AuthType NONE and the two policy
        statements AWS requires (and `lambdalet url create` adds)."""
        address = self.client.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
        self.client.add_permission(
            FunctionName=name,
            StatementId="FunctionURLAllowPublicAccess",
            Action="lambda:InvokeFunctionUrl",
            Principal="*",
            FunctionUrlAuthType="NONE",
        )
        self.client.add_permission(
            FunctionName=name,
            StatementId="FunctionURLAllowInvokeAction",
            Action="lambda:InvokeFunction",
            Principal="*",
            InvokedViaFunctionUrl=True,
        )
        return address

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and all its threads, in
    seconds (its sandboxes are other processes)."""
    stat = proc_stat.read(pid)
    if stat is None:
        raise ProcessLookupError(pid)
    return (stat.utime + stat.stime) / os.sysconf("SC_CLK_TCK")


def http_get_once(url: str) -> float:
    """Seconds from connect to a complete response, with a raw socket."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    request = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode()
    started = time.perf_counter()
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=30) as s:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    elapsed = time.perf_counter() - started
    if not data.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"bad response from {url}: {data[:200]!r}")
    return elapsed


def load(url: str, connections: int, seconds: float) -> dict:
    """Closed-loop load: wrk when installed (it costs the machine less than
    any Python client), otherwise lambdalet's own load generator."""
    wrk = shutil.which("wrk")
    if wrk:
        proc = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url], capture_output=True, text=True, timeout=seconds + 60
        )
        out = proc.stdout + proc.stderr
        found = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if found is None:
            raise RuntimeError(f"wrk against {url} printed no result:\n{out}")
        rps = float(found.group(1))

        def ms(label: str) -> float:
            m = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)\b", out)
            if m is None:
                raise RuntimeError(f"wrk printed no {label}th percentile:\n{out}")
            value, unit = float(m.group(1)), m.group(2)
            return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        n_err = (int(errors.group(1)) if errors else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0)
        return {"tool": "wrk", "rps": rps, "p50_ms": ms("50"), "p99_ms": ms("99"), "errors": n_err}
    import trio

    from lambdalet.gateway.cli.loadgen import plain_request, run_load

    results = trio.run(run_load, url, plain_request(url), connections, seconds)
    s = results.summary()
    return {
        "tool": "lambdalet bench",
        "rps": s["rps"],
        "p50_ms": s["latency_ms"]["p50"],
        "p99_ms": s["latency_ms"]["p99"],
        "errors": s["errors"],
    }


def best_of(runs: list[dict]) -> dict:
    """The median run by throughput: noise on a shared machine goes both ways."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    return ordered[len(ordered) // 2]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


def median(values: list[float]) -> float:
    return statistics.median(values)
