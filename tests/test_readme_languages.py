"""The README's Java and C# examples, run as written, as a new user of this
host runs them: a home of their own (so the Java runtime's files and the C#
contract are built from nothing into its ~/.cache/lambdalet), the commands
read out of README.md (the fenced blocks after `<!-- language example:
NAME -->`), the aws CLI and `lambdalet` of this test run's venv.

Also what a user is told when the order goes wrong: a server started before
`lambdalet runtimes install java` refuses Java functions until it is
restarted, and says so.
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
import runtime_builds
from helpers import ServerProcess, make_zip

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def example_blocks(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"<!-- language example: (\w+)[^>]*-->\n```\w*\n(.*?)```", text, re.S)}


def test_the_readme_names_its_language_examples():
    assert set(example_blocks(README.read_text())) == {"java_install", "java", "csharp", "go"}


@pytest.fixture
def user(tmp_path):
    """A new user's home and shell environment. Maven's local repository is
    the machine's (as pip's cache is in test_readme_quickstart): the
    artifacts are the same, only the downloads are spared."""
    home = tmp_path / "home"
    home.mkdir()
    m2 = pathlib.Path.home() / ".m2"
    if m2.is_dir():
        (home / ".m2").symlink_to(m2)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "LAMBDALET_", "XDG_"))}
    env.update(HOME=str(home), PATH=f"{os.path.dirname(sys.executable)}:{env.get('PATH', '/usr/bin:/bin')}", AWS_PAGER="")
    return home, env


def _sh(script: str, env: dict, cwd: pathlib.Path, timeout: float = 900) -> str:
    proc = subprocess.run(["bash", "-e", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"$ {script}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _serve(home: pathlib.Path, env: dict) -> tuple[ServerProcess, dict]:
    server = ServerProcess(home / "data", env={"HOME": str(home)}).start(timeout=180)
    shell = dict(
        env,
        AWS_ENDPOINT_URL=server.url,
        AWS_SHARED_CREDENTIALS_FILE=str(home / "data" / "credentials"),
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
    )
    return server, shell


def test_the_java_and_csharp_examples_work_as_written(user, tmp_path):
    home, env = user
    blocks = example_blocks(README.read_text())
    work = tmp_path / "work"
    shutil.copytree(ROOT / "tests" / "languages" / "java", work / "tests" / "languages" / "java")
    # Once per host, before the server starts.
    _sh(blocks["java_install"], env, work)
    server, shell = _serve(home, env)
    try:
        assert not any("java17: CANNOT RUN" in line for line in server.output), "".join(server.output)
        out = _sh(blocks["java"], shell, work)
        answer = json.loads((work / "out.json").read_text())
        assert out.rstrip().endswith((work / "out.json").read_text().rstrip()), out
        assert answer["echo"] == {"x": 1} and answer["functionName"] == "hello-java", answer
        out = _sh(blocks["csharp"], shell, work)
        assert (work / "out.json").read_text() == '"hello you"' and out.rstrip().endswith('"hello you"'), out
    finally:
        assert server.stop() == 0, "".join(server.output)


def test_the_custom_runtime_example_works_as_written(user, tmp_path):
    """The Go example, in a copy of the aws-lambda-go sample (its default
    handler echoes the event). Go's module and build caches are the
    machine's, as Maven's repository is above."""
    home, env = user
    go = runtime_builds.tool("go")
    for cache in (pathlib.Path.home() / "go", pathlib.Path.home() / ".cache" / "go-build"):
        if cache.is_dir():
            link = home / cache.relative_to(pathlib.Path.home())
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(cache)
    env = dict(env, PATH=f"{env['PATH']}:{os.path.dirname(go)}")
    work = tmp_path / "go"
    shutil.copytree(ROOT / "tests" / "custom_runtimes" / "go", work)
    server, shell = _serve(home, env)
    try:
        _sh(example_blocks(README.read_text())["go"], shell, work)
        assert json.loads((work / "out.json").read_text()) == {"x": 1}
    finally:
        assert server.stop() == 0, "".join(server.output)


def test_a_server_started_before_the_java_install_says_to_restart_it(user, tmp_path):
    home, env = user
    jar = tmp_path / "fn.jar"
    jar.write_bytes(make_zip({"example/Hello.class": b"not compiled: refused before it is read"}))
    server, shell = _serve(home, env)
    try:
        line = next(line for line in server.output if "runtime java17:" in line)
        assert "CANNOT RUN" in line and "restart" in line, line
        proc = subprocess.run(
            [
                "aws",
                "lambda",
                "create-function",
                "--function-name",
                "too-early",
                "--runtime",
                "java17",
                "--handler",
                "example.Hello::handleRequest",
                "--role",
                "arn:aws:iam::123456789012:role/any",
                "--zip-file",
                f"fileb://{jar}",
            ],
            env=shell,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode != 0 and "InvalidParameterValueException" in proc.stderr, proc.stderr
        assert "lambdalet runtimes install java" in proc.stderr and "restart" in proc.stderr, proc.stderr
    finally:
        assert server.stop() == 0, "".join(server.output)


def test_a_jdk_without_its_runtime_files_is_still_named_as_one_the_host_has():
    from lambdalet.gateway.functions.runtimes import RuntimeCatalog
    from lambdalet.sandbox import interpreters
    from lambdalet.sandbox.languages import Toolchain

    jdk = Toolchain(
        runtime="java17", language="java", path="/usr/lib/jvm/jdk17/bin/java", version="17.0.15", home="/usr/lib/jvm/jdk17", found="test"
    )
    mine = interpreters.own()
    catalog = RuntimeCatalog({mine.runtime: mine}, toolchains={"java17": jdk}, unready={"java17": "not built"})
    why = catalog.refusal("java21")
    assert "no JDK 21" in why and "17.0.15 (/usr/lib/jvm/jdk17)" in why and "it has none" not in why, why
    assert catalog.refusal("java17").endswith("not built.")
