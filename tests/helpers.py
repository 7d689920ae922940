"""Shared test helpers: a real server process on loopback, and clients for it."""

from __future__ import annotations

import configparser
import contextlib
import errno
import io
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile

import boto3
import botocore.config
import requests

from lambdalet.sandbox import proc_stat

_URL_RE = re.compile(r"serving the Lambda API on (http://\S+)")


def make_zip(files: dict[str, str | bytes], modes: dict[str, int] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = ((modes or {}).get(name, 0o644) | 0o100000) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content)
    return buf.getvalue()


def lambdalet_argv(*args: str) -> list[str]:
    # sys.executable as it is, not its realpath: in a venv the symlink's
    # target is the base interpreter, which cannot see the venv's packages.
    # (It is already an absolute path, so PATH's slow python3 shim is skipped.)
    return [sys.executable, "-m", "lambdalet.gateway.cli", *args]


class ServerProcess:
    """`lambdalet serve` in a subprocess, stopped with SIGTERM (or SIGKILL)."""

    def __init__(self, data_dir: pathlib.Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.extra = extra
        self.env = env  # added to this process's environment
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.output: list[str] = []
        self._drainer: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.proc = subprocess.Popen(
            lambdalet_argv("serve", "--port", "0", "--data-dir", str(self.data_dir), *self.extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=None if self.env is None else {**os.environ, **self.env},
        )
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("server exited during start-up:\n" + "".join(self.output))
            self.output.append(line)
            m = _URL_RE.search(line)
            if m:
                self.url = m.group(1)
            if line.startswith("  export AWS_ENDPOINT_URL="):
                break
        else:
            raise RuntimeError("server did not start:\n" + "".join(self.output))
        # Drain the rest of the output in the background so the pipe never fills.
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        r = requests.get(self.url + "/health", timeout=5)
        assert r.status_code == 200
        return self

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def credentials(self) -> tuple[str, str]:
        parser = configparser.ConfigParser()
        parser.read(self.data_dir / "credentials")
        return parser["default"]["aws_access_key_id"], parser["default"]["aws_secret_access_key"]

    def client(self, **config):
        key, secret = self.credentials()
        return boto3.client(
            "lambda",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=60, **config),
        )

    def __enter__(self) -> ServerProcess:
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc) -> None:
        """Stops the server if it still runs (a test that failed half-way
        must not leave it behind), and reaps it if it was killed."""
        if self.proc is not None and self.proc.stdout is not None and not self.proc.stdout.closed:
            self.stop()

    def aws(self, service: str, *, region: str = "us-east-1", **config):
        """A boto3 client of another service on the same port (s3, sqs)."""
        key, secret = self.credentials()
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=60, **config),
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        if self._drainer is not None:
            self._drainer.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def descendants(self) -> set[tuple[int, int]]:
        """Every live process below the server, as (pid, start time) so a
        reused pid is never mistaken for a survivor."""
        assert self.proc is not None
        return descendants_of(self.proc.pid)


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, starttime) from /proc/<pid>/stat, or None if it is gone."""
    stat = proc_stat.read(pid)
    return (stat.ppid, stat.starttime) if stat is not None else None


def descendants_of(root: int) -> set[tuple[int, int]]:
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry))
                starts[int(entry)] = st[1]
    out: set[tuple[int, int]] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add((child, starts[child]))
            todo.append(child)
    return out


def still_running(procs: set[tuple[int, int]]) -> set[tuple[int, int]]:
    alive = set()
    for pid, start in procs:
        st = _stat(pid)
        if st is not None and st[1] == start:
            try:
                with open(f"/proc/{pid}/status", "rb") as f:
                    if b"State:\tZ" in f.read():
                        continue  # a zombie has exited; only its parent's wait is missing
            except OSError:
                continue
            alive.add((pid, start))
    return alive


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Polls a condition (not a clock) until it holds; fails loudly if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s: {predicate}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Books:
    """The usage ledger and the log store behind their call journal,
    opened in a data dir as the server opens them."""

    def __init__(self, data_dir: pathlib.Path, *, retention_days: int = 0) -> None:
        from lambdalet.gateway.metering.calls import CallJournal
        from lambdalet.gateway.metering.ledger import Ledger
        from lambdalet.gateway.metering.logstore import LogStore

        self.ledger = Ledger(data_dir)
        self.logstore = LogStore(data_dir, retention_days=retention_days)
        self.journal = CallJournal(data_dir, self.ledger, self.logstore)

    def close(self) -> None:
        self.journal.close()
        self.ledger.close()
        self.logstore.close()


@contextlib.contextmanager
def small_tmpfs(path: pathlib.Path, size_kb: int):
    """A tmpfs of size_kb mounted at path (a new directory) for the block:
    a disk that fills up for real. Needs root; unmounted afterwards (a
    busy mount fails the test: something kept a file open)."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        # The server's last sandboxes may take a moment to be gone after it
        # exits; anything holding the mount longer is a leak.
        deadline = time.monotonic() + 10
        while subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                holders = subprocess.run(["fuser", "-vm", str(path)], capture_output=True, text=True)
                subprocess.run(["umount", "-l", str(path)], check=True)
                raise AssertionError(f"{path} stayed busy: {holders.stdout}{holders.stderr}")
            time.sleep(0.1)


def fill_disk(directory: pathlib.Path, name: str = "filler") -> pathlib.Path:
    """Writes a file in directory until the file system is full; returns it
    (truncate or remove it to make room again)."""
    path = directory / name
    chunk = b"\0" * 65536
    with open(path, "ab", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return path
                chunk = chunk[: len(chunk) // 2]


def signed_get(server: ServerProcess, path: str) -> requests.Response:
    """A GET on the server's own routes (/_lambdalet/...), SigV4-signed as the CLI signs it."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    key, secret = server.credentials()
    req = botocore.awsrequest.AWSRequest(method="GET", url=server.url + path)
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "lambda", "us-east-1").add_auth(req)
    return requests.get(server.url + path, headers=dict(req.headers), timeout=60)


def signed_request(
    server: ServerProcess, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> requests.Response:
    """A SigV4-signed request with whatever body and headers a test wants,
    for what boto3 would refuse to send."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    key, secret = server.credentials()
    req = AWSRequest(method=method, url=server.url + path, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    SigV4Auth(Credentials(key, secret), "lambda", "us-east-1").add_auth(req)
    prepared = req.prepare()
    return requests.request(method, prepared.url, headers=dict(prepared.headers), data=body, timeout=30)


def allow_public_url(lam, name: str, qualifier: str | None = None) -> None:
    """What an AWS user adds for a function URL with AuthType NONE (and
    what the AWS console and `lambdalet url create` add): everyone may
    invoke it through its URL. Since October 2025 AWS wants both
    statements."""
    extra = {"Qualifier": qualifier} if qualifier else {}
    lam.add_permission(
        FunctionName=name,
        StatementId="FunctionURLAllowPublicAccess",
        Action="lambda:InvokeFunctionUrl",
        Principal="*",
        FunctionUrlAuthType="NONE",
        **extra,
    )
    lam.add_permission(
        FunctionName=name,
        StatementId="FunctionURLAllowInvokeAction",
        Action="lambda:InvokeFunction",
        Principal="*",
        InvokedViaFunctionUrl=True,
        **extra,
    )


def make_test_cert(directory: pathlib.Path, san: str = "IP:127.0.0.1") -> tuple[pathlib.Path, pathlib.Path]:
    """A self-signed certificate for a TLS test, valid a day: (key, cert) in directory."""
    key, crt = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            f"subjectAltName={san}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return key, crt
