"""The lambdalet CLI and the aws CLI, as a user types them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from helpers import lambdalet_argv, make_zip


def run_cli(server, *args, env_extra=None, check=True):
    env = dict(os.environ, LAMBDALET_ENDPOINT=server.url, LAMBDALET_DATA_DIR=str(server.data_dir))
    env.update(env_extra or {})
    proc = subprocess.run(lambdalet_argv(*args), capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_deploy_invoke_ls_rm(server, tmp_path, fn_name):
    src = tmp_path / "fn"
    src.mkdir()
    (src / "app.py").write_text(
        "import os\ndef handler(e, c):\n    print('tail me')\n    return {'got': e, 'greeting': os.environ['GREETING']}\n"
    )
    out = run_cli(
        server,
        "deploy",
        str(src),
        "--name",
        fn_name,
        "--handler",
        "app.handler",
        "--memory",
        "256",
        "--timeout",
        "5",
        "--env",
        "GREETING=hello",
    )
    assert f"created {fn_name}" in out.stdout
    out = run_cli(server, "invoke", fn_name, "--payload", '{"n": 1}', "--tail")
    assert json.loads(out.stdout) == {"got": {"n": 1}, "greeting": "hello"}
    assert "tail me" in out.stderr and "REPORT RequestId:" in out.stderr

    # Deploying again updates in place.
    (src / "app.py").write_text("def handler(e, c):\n    return 'v2'\n")
    out = run_cli(server, "deploy", str(src), "--name", fn_name, "--handler", "app.handler")
    assert f"updated {fn_name}" in out.stdout
    payload = tmp_path / "p.json"
    payload.write_text('{"from": "file"}')
    assert json.loads(run_cli(server, "invoke", fn_name, "--payload", f"@{payload}").stdout) == "v2"

    listed = run_cli(server, "ls").stdout
    assert fn_name in listed and listed.splitlines()[0].startswith("NAME")
    assert fn_name in [f["name"] for f in json.loads(run_cli(server, "ls", "--json").stdout)]
    assert f"deleted {fn_name}" in run_cli(server, "rm", fn_name).stdout
    assert fn_name not in run_cli(server, "ls").stdout


def test_deploy_a_zip_and_guess_the_handler(server, tmp_path, fn_name):
    z = tmp_path / "fn.zip"
    z.write_bytes(make_zip({"lambda_function.py": "def lambda_handler(e, c):\n    return 'zipped'\n"}))
    run_cli(server, "deploy", str(z), "--name", fn_name)
    assert json.loads(run_cli(server, "invoke", fn_name).stdout) == "zipped"


def test_function_error_exits_non_zero_and_prints_the_error(server, tmp_path, fn_name):
    src = tmp_path / "fn"
    src.mkdir()
    (src / "app.py").write_text("def handler(e, c):\n    raise RuntimeError('nope')\n")
    run_cli(server, "deploy", str(src), "--name", fn_name, "--handler", "app.handler")
    out = run_cli(server, "invoke", fn_name, check=False)
    assert out.returncode == 1
    assert json.loads(out.stdout)["errorType"] == "RuntimeError"


@pytest.mark.parametrize(
    "args,message",
    [
        (("invoke", "no-such-function-here"), "ResourceNotFoundException"),
        (("rm", "no-such-function-here"), "ResourceNotFoundException"),
        (("invoke", "x", "--payload", "{not json"), "--payload is not valid JSON"),
        (("invoke", "x", "--payload", "@/nonexistent/file.json"), "cannot read payload file"),
        (("deploy", "/nonexistent/dir", "--name", "x"), "no such file or directory"),
        (("deploy", "/etc/hostname", "--name", "x"), "is not a .zip file or a directory"),
        (("deploy", ".", "--name", "bad name!", "--env", "NOEQUALS"), "--env expects KEY=VALUE"),
    ],
)
def test_user_errors_are_one_line(server, args, message):
    out = run_cli(server, *args, check=False)
    assert out.returncode != 0
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_unreachable_server_is_one_line(server):
    out = run_cli(server, "ls", env_extra={"LAMBDALET_ENDPOINT": "http://127.0.0.1:9"}, check=False)
    assert out.returncode != 0
    assert "cannot reach the server" in out.stderr


def test_missing_credentials_is_one_line(server, tmp_path):
    out = run_cli(server, "ls", env_extra={"LAMBDALET_DATA_DIR": str(tmp_path / "nowhere")}, check=False)
    assert out.returncode != 0
    assert "no credentials" in out.stderr


def test_doctor_reports_the_host(server):
    out = run_cli(server, "doctor")
    assert "sandbox backend:" in out.stdout
    assert "cgroups:" in out.stdout
    assert "  on   host_pids_cap" in out.stdout and "  on   idle_freeze" in out.stdout
    assert "host share: all functions' processes and threads together capped at" in out.stdout
    # doctor starts one worker the way a cold start does.
    assert "workers: forked from the runtime zygote; the first one was ready in" in out.stdout


AWS = shutil.which("aws")


@pytest.mark.cli
@pytest.mark.skipif(AWS is None, reason="the aws CLI is not installed")
def test_aws_cli_round_trip(server, tmp_path, fn_name):
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL=server.url,
        AWS_SHARED_CREDENTIALS_FILE=str(server.data_dir / "credentials"),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_PAGER="",
    )
    env.pop("AWS_PROFILE", None)
    z = tmp_path / "fn.zip"
    z.write_bytes(make_zip({"app.py": "def handler(e, c):\n    return {'cli': e}\n"}))

    def aws(*args):
        proc = subprocess.run([AWS, "lambda", *args], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    py = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    created = json.loads(
        aws(
            "create-function",
            "--function-name",
            fn_name,
            "--runtime",
            py,
            "--role",
            "arn:aws:iam::123456789012:role/r",
            "--handler",
            "app.handler",
            "--zip-file",
            f"fileb://{z}",
        )
    )
    assert created["FunctionName"] == fn_name
    aws("wait", "function-active-v2", "--function-name", fn_name)
    out = tmp_path / "out.json"
    meta = json.loads(aws("invoke", "--function-name", fn_name, "--payload", '{"a": 1}', str(out)))
    assert meta["StatusCode"] == 200
    assert json.loads(out.read_text()) == {"cli": {"a": 1}}
    assert fn_name in [f["FunctionName"] for f in json.loads(aws("list-functions"))["Functions"]]
    aws("update-function-configuration", "--function-name", fn_name, "--timeout", "10")
    aws("wait", "function-updated-v2", "--function-name", fn_name)
    assert json.loads(aws("get-function-configuration", "--function-name", fn_name))["Timeout"] == 10
    aws("delete-function", "--function-name", fn_name)
