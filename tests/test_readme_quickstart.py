"""The README's quick-start, run as written, in a fresh venv that has only
what the README installs, against the server the README starts.

The commands are read out of README.md (the fenced blocks after the
`<!-- quick-start: NAME -->` markers), so this test breaks when the README
drifts from what works. The checkout is copied first: `pip install -e .`
builds the C extension in place, and the checkout's own build is in use by
the other tests' servers.
"""

from __future__ import annotations

import configparser
import fcntl
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest
import requests
from console_client import csrf_of
from helpers import descendants_of, still_running, wait_for

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PORT = 9000  # the README's
# Concurrent runs of this test (other checkouts on the machine) take turns for port 9000.
TURN_LOCK = "/tmp/lambdalet-readme-quickstart.lock"


def quick_start_blocks(text: str) -> dict[str, str]:
    blocks = {}
    for m in re.finditer(r"<!-- quick-start: (\w+)[^>]*-->\n```\w*\n(.*?)```", text, re.S):
        blocks[m.group(1)] = m.group(2)
    return blocks


def test_the_readme_names_its_quick_start_blocks():
    blocks = quick_start_blocks(README.read_text())
    assert set(blocks) == {"serve", "export", "deploy", "python", "node", "s3", "sqs", "sqs_python"}
    install, serve = blocks["serve"].strip().split(" && ")
    assert install.startswith("python3 -m pip install") and serve == "lambdalet serve"


def _copy_checkout(dest: pathlib.Path) -> None:
    shutil.copytree(
        ROOT,
        dest,
        symlinks=True,
        ignore=shutil.ignore_patterns(".git", "__pycache__", "*.so", "*.egg-info", "build", ".venv*", ".pytest_cache"),
    )


def _user_env(home: pathlib.Path, venv: pathlib.Path) -> dict[str, str]:
    """A shell as a new user has it: the venv activated, a home of its own,
    no AWS or lambdalet settings, nothing of this test run's interpreter."""
    env = {
        "HOME": str(home),
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(venv),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        # pip's cache (outside the fresh home) spares the downloads; the
        # index is still asked, as for any user.
        "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR") or os.path.expanduser("~/.cache/pip"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        if proxy in os.environ:
            env[proxy] = os.environ[proxy]
    return env


def _sh(script: str, env: dict, cwd: pathlib.Path, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", "-e", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"$ {script}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_the_readme_quick_start_works_as_written(tmp_path):
    blocks = quick_start_blocks(README.read_text())
    install, serve = blocks["serve"].strip().split(" && ")
    checkout, home, venv, work = tmp_path / "lambdalet", tmp_path / "home", tmp_path / "venv", tmp_path / "work"
    _copy_checkout(checkout)
    home.mkdir()
    work.mkdir()
    # The fresh venv a user makes (python3 -m venv), from the interpreter
    # this run uses; then only what the README installs.
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = _user_env(home, venv)
    _sh(install, env, checkout)

    with open(TURN_LOCK, "a") as turn:
        fcntl.flock(turn, fcntl.LOCK_EX)
        if not _port_free(PORT):
            pytest.skip(f"port {PORT}, which the README's server uses, is taken by another program on this machine")
        server = subprocess.Popen(
            ["bash", "-e", "-c", serve],
            env=env,
            cwd=checkout,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        output = []
        try:
            assert server.stdout is not None
            for line in server.stdout:
                output.append(line)
                if line.startswith("  export "):
                    break
            printed = output[-1].strip() if output else ""
            assert printed.startswith("export AWS_ENDPOINT_URL="), "".join(output)
            # The README's example line is the one the server prints (its ~ being this user's home).
            readme_export = blocks["export"].strip()
            assert readme_export.replace("~", str(home)) == printed
            console = [line.strip()[len("console: ") :] for line in output if line.strip().startswith("console: ")]
            assert console == [f"http://127.0.0.1:{PORT}/console"], "".join(output)

            # A second shell: the README's export line as written, then its commands.
            out = _sh(f"{readme_export}\n{blocks['deploy']}", env, work).stdout
            assert out.rstrip().endswith('{"hello": {"x": 1}}'), out
            assert (work / "out.json").read_text() == '{"hello": {"x": 1}}'

            # The Node.js function, deployed and called the same way.
            out = _sh(f"{readme_export}\n{blocks['node']}", env, work).stdout
            assert out.rstrip().endswith('{"hello":{"x":1}}'), out

            # The Python example, with its last expression's value shown.
            *body, last = [line for line in blocks["python"].strip().splitlines()]
            script = "\n".join(body + [f"print(repr({last.split('  #')[0]}))"])
            out = _sh(f"{readme_export}\npython3 - <<'EOF'\n{script}\nEOF", env, work).stdout
            assert out.strip() == repr(b'{"hello": {"x": 1}}')

            # S3 and SQS on the same port: an upload and a batch of messages
            # run their functions, as the README shows.
            out = _sh(f"{readme_export}\n{blocks['s3']}", env, work).stdout
            if "new object: bucket in/x.csv 8" not in out:
                wait_for(
                    lambda: "new object: bucket in/x.csv 8" in _sh(f"{readme_export}\nlambdalet logs on-upload", env, work).stdout,
                    timeout=60,
                )
            _sh(f"{readme_export}\n{blocks['sqs']}", env, work)
            *body, last = [line for line in blocks["sqs_python"].strip().splitlines()]
            script = "\n".join(body + [f"print(repr({last}))"])
            assert _sh(f"{readme_export}\npython3 - <<'EOF'\n{script}\nEOF", env, work).stdout.strip() == "'0'"
            batch = "batch: ['job 0', 'job 1', 'job 2', 'job 3', 'job 4']"
            wait_for(lambda: batch in _sh(f"{readme_export}\nlambdalet logs worker --filter batch", env, work).stdout, timeout=60)
            # The console URL the server printed, opened as a browser would:
            # the sign-in page, then (with the keys) the functions just deployed.
            _console_shows_the_dashboard(
                console[0], home / ".local" / "share" / "lambdalet" / "credentials", ["hello", "hello-node", "on-upload", "worker"]
            )
            workers = descendants_of(server.pid)
        finally:
            # The README's server runs in the foreground until Ctrl-C: SIGINT
            # to the session this test started for it.
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGINT)
            rest, _ = server.communicate(timeout=60)
            output.append(rest or "")
        assert server.returncode in (0, 130), "".join(output)
        assert "lambdalet: stopped" in "".join(output)
        wait_for(lambda: not still_running(workers), timeout=30)
    # Everything it kept is in the README's data directory.
    data = home / ".local" / "share" / "lambdalet"
    assert (data / "credentials").is_file() and (data / "lambdalet.db").is_file()


def _console_shows_the_dashboard(url: str, credentials: pathlib.Path, functions: list[str]) -> None:
    keys = configparser.ConfigParser()
    keys.read(credentials)
    with requests.Session() as browser:
        browser.trust_env = False  # loopback: no proxy from the environment
        page = browser.get(url, timeout=30)
        assert page.status_code == 200 and page.url.startswith(url + "/sign-in"), (page.status_code, page.url)
        form = {
            "csrf": csrf_of(page.text),
            "method": "key",
            "access_key_id": keys["default"]["aws_access_key_id"],
            "secret_access_key": keys["default"]["aws_secret_access_key"],
            "next": "",
        }
        dashboard = browser.post(url + "/sign-in", data=form, timeout=30)
        assert dashboard.status_code == 200 and dashboard.url == url + "/functions", (dashboard.status_code, dashboard.url)
        for name in functions:
            assert f'href="/console/functions/{name}"' in dashboard.text, name
