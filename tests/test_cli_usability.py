"""What a new user of the `lambdalet` command line runs into: a redeploy
that forgets settings, ordinary AWS settings in the shell, pipes, options
after the subcommand, and errors that should stop a command early."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import lambdalet_argv, make_zip, wait_for
from test_cli import run_cli

PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"


def _app(tmp_path, source: str, name: str = "app.py"):
    src = tmp_path / "fn"
    src.mkdir(exist_ok=True)
    (src / name).write_text(source)
    return src


def test_a_redeploy_changes_only_what_it_is_given(server, lam, tmp_path, fn_name):
    src = _app(tmp_path, "def main(e, c):\n    return 'v1'\n")
    run_cli(
        server,
        "deploy",
        str(src),
        "--name",
        fn_name,
        "--handler",
        "app.main",
        "--runtime",
        PY,
        "--memory",
        "256",
        "--timeout",
        "7",
        "--env",
        "KEY=V",
    )
    (src / "app.py").write_text("def main(e, c):\n    return 'v2'\n")
    out = run_cli(server, "deploy", str(src), "--name", fn_name)
    assert f"updated {fn_name} ({PY}, app.main, 256 MB, 7 s)" in out.stdout
    conf = lam.get_function_configuration(FunctionName=fn_name)
    assert (conf["Handler"], conf["Runtime"], conf["MemorySize"], conf["Timeout"]) == ("app.main", PY, 256, 7)
    assert conf["Environment"]["Variables"] == {"KEY": "V"}
    assert json.loads(run_cli(server, "invoke", fn_name).stdout) == "v2"
    # What is given is changed, and only that.
    run_cli(server, "deploy", str(src), "--name", fn_name, "--timeout", "9")
    conf = lam.get_function_configuration(FunctionName=fn_name)
    assert (conf["Handler"], conf["MemorySize"], conf["Timeout"]) == ("app.main", 256, 9)


def _aws_shell(**extra) -> dict:
    # What a developer who also uses AWS has in the shell.
    return {
        "AWS_PROFILE": "dev",
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        **extra,
    }


def test_aws_settings_in_the_shell_do_not_reach_the_server(server, deploy, tmp_path):
    name = deploy({"app.py": "def handler(e, c):\n    return 'hi'\n"})
    env = _aws_shell(AWS_CONFIG_FILE=str(tmp_path / "config"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"))
    (tmp_path / "config").write_text("[profile other]\nregion = eu-west-1\n")
    assert name in run_cli(server, "ls", env_extra=env).stdout
    assert json.loads(run_cli(server, "invoke", name, env_extra=env).stdout) == "hi"
    assert run_cli(server, "usage", "--json", env_extra=env).returncode == 0
    assert run_cli(server, "schedule", "ls", env_extra=env).returncode == 0


def test_keys_the_server_does_not_know_are_explained(server, tmp_path):
    other = tmp_path / "other-data-dir"
    other.mkdir()
    (other / "credentials").write_text("[default]\naws_access_key_id = AKIDNOTTHESERVERS000\naws_secret_access_key = nope\n")
    for args in (("ls",), ("logs", "x"), ("schedule", "ls")):
        out = run_cli(server, *args, env_extra={"LAMBDALET_DATA_DIR": str(other)}, check=False)
        assert out.returncode == 1
        assert "UnrecognizedClientException" in out.stderr
        assert f"does not know the key lambdalet signed with (AKIDNOTTHESERVERS000, from {other / 'credentials'})" in out.stderr
        assert "--data-dir" in out.stderr and "LAMBDALET_ACCESS_KEY_ID" in out.stderr
    # Told otherwise, explicitly: keys from the environment, for this server's own keys.
    key, secret = server.credentials()
    out = run_cli(
        server, "ls", env_extra={"LAMBDALET_DATA_DIR": str(other), "LAMBDALET_ACCESS_KEY_ID": key, "LAMBDALET_SECRET_ACCESS_KEY": secret}
    )
    assert out.stdout.startswith("NAME")


def test_a_reader_that_goes_away_is_no_traceback(server, deploy):
    deploy({"app.py": "def handler(e, c):\n    return 1\n"})
    env = dict(os.environ, LAMBDALET_ENDPOINT=server.url, LAMBDALET_DATA_DIR=str(server.data_dir))
    for args in (("ls",), ("ls", "--json"), ("usage",)):
        # The read end is closed before the command writes: `lambdalet ls | head -0`.
        read, write = os.pipe()
        os.close(read)
        try:
            proc = subprocess.run(lambdalet_argv(*args), stdout=write, stderr=subprocess.PIPE, text=True, env=env, timeout=60)
        finally:
            os.close(write)
        assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
        assert proc.stderr == ""
        assert proc.returncode == 141


def test_endpoint_and_data_dir_work_after_the_subcommand(server, deploy):
    name = deploy({"app.py": "def handler(e, c):\n    return 1\n"})
    bare = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDALET_")}
    common = ["--endpoint", server.url, "--data-dir", str(server.data_dir)]
    for argv in (["ls", *common], ["invoke", name, *common], ["schedule", "ls", *common], ["dlq", "ls", *common], ["usage", *common]):
        proc = subprocess.run(lambdalet_argv(*argv), capture_output=True, text=True, env=bare, timeout=60)
        assert proc.returncode == 0, (argv, proc.stderr)
    # And before it, as before.
    proc = subprocess.run(lambdalet_argv(*common, "ls"), capture_output=True, text=True, env=bare, timeout=60)
    assert proc.returncode == 0 and name in proc.stdout


def test_logs_of_a_function_that_does_not_exist_is_an_error(server, deploy):
    out = run_cli(server, "logs", "no-such-function-anywhere", check=False)
    assert out.returncode == 1
    assert "ResourceNotFoundException: no function named no-such-function-anywhere" in out.stderr
    name = deploy({"app.py": "def handler(e, c):\n    return 1\n"})
    out = run_cli(server, "logs", name)
    assert out.stdout == "" and f"no log events in /aws/lambda/{name}" in out.stderr


@pytest.mark.parametrize("why", ["no_function", "dead_server", "bad_keys"])
def test_bench_stops_at_once_with_the_error(server, tmp_path, why):
    env = {}
    target = "no-such-function-for-bench"
    if why == "dead_server":
        from helpers import free_port

        env["LAMBDALET_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    elif why == "bad_keys":
        other = tmp_path / "d"
        other.mkdir()
        (other / "credentials").write_text("[default]\naws_access_key_id = AKIDBENCH00000000000\naws_secret_access_key = x\n")
        env["LAMBDALET_DATA_DIR"] = str(other)
    # An hour's run: had it not stopped with the error, run_cli's timeout fails the test.
    out = run_cli(server, "bench", target, "-d", "3600", "-c", "2", env_extra=env, check=False)
    assert out.returncode == 1
    assert {
        "no_function": "ResourceNotFoundException",
        "dead_server": "cannot reach the server",
        "bad_keys": "UnrecognizedClientException",
    }[why] in out.stderr


def _invocations(url: str, name: str) -> float:
    import re

    import requests

    text = requests.get(f"{url}/metrics", timeout=10).text
    return sum(float(m.group(1)) for m in re.finditer(rf'^lambdalet_invocations_total{{[^}}]*function="{name}"[^}}]*}} (\S+)$', text, re.M))


def test_bench_stops_when_the_server_goes_away_mid_run(tmp_path):
    from helpers import ServerProcess

    srv = ServerProcess(tmp_path / "data").start()
    try:
        lam = srv.client()
        lam.create_function(
            FunctionName="b",
            Runtime=PY,
            Role="arn:aws:iam::123456789012:role/r",
            Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 1\n"})},
        )
        lam.get_waiter("function_active_v2").wait(FunctionName="b", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        env = dict(os.environ, LAMBDALET_ENDPOINT=srv.url, LAMBDALET_DATA_DIR=str(srv.data_dir))
        bench = subprocess.Popen(
            lambdalet_argv("bench", "b", "-d", "3600", "-c", "2"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        try:
            # Under way: the server has answered some of its calls.
            wait_for(lambda: _invocations(srv.url, "b") > 10, timeout=60)
        finally:
            srv.stop()
        try:
            out, err = bench.communicate(timeout=60)
        finally:
            bench.kill()
    finally:
        if srv.proc and srv.proc.poll() is None:
            srv.stop()
    assert bench.returncode == 1, err
    assert "refused the connection" in err and "is it running?" in err


def test_help_shows_options_and_defaults_and_there_is_a_version():
    out = subprocess.run(lambdalet_argv("serve", "--help"), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    assert "--port PORT port to listen on (0: any free port) (default: 9000)" in text
    assert "(default: 127.0.0.1)" in text and "(default: 300.0)" in text
    out = subprocess.run(lambdalet_argv("deploy", "--help"), capture_output=True, text=True, timeout=60)
    assert "an update keeps the function's" in " ".join(out.stdout.split())
    out = subprocess.run(lambdalet_argv("--version"), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    from importlib.metadata import version

    assert out.stdout.strip() == f"lambdalet {version('lambdalet')}"


def test_doctor_creates_nothing_and_says_whether_a_server_runs(server, tmp_path):
    missing = tmp_path / "never-made"
    out = subprocess.run(lambdalet_argv("doctor", "--data-dir", str(missing)), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert not missing.exists()
    assert "does not exist yet" in out.stdout and "server: none" in out.stdout
    out = run_cli(server, "doctor")
    assert f"server: running, pid {server.proc.pid}, serving {server.url}" in out.stdout
    stopped = tmp_path / "stopped"
    from helpers import ServerProcess

    srv = ServerProcess(stopped).start()
    assert srv.stop() == 0
    out = subprocess.run(lambdalet_argv("doctor", "--data-dir", str(stopped)), capture_output=True, text=True, timeout=120)
    assert "server: none running on this data dir" in out.stdout


def test_an_empty_directory_or_zip_is_refused(server, lam, tmp_path, fn_name):
    empty = tmp_path / "empty"
    (empty / "__pycache__").mkdir(parents=True)
    (empty / "__pycache__" / "x.pyc").write_bytes(b"")
    out = run_cli(server, "deploy", str(empty), "--name", fn_name, check=False)
    assert out.returncode == 1 and "holds no files to deploy" in out.stderr
    z = tmp_path / "empty.zip"
    z.write_bytes(make_zip({}))
    out = run_cli(server, "deploy", str(z), "--name", fn_name, check=False)
    assert out.returncode == 1 and "is an empty .zip file" in out.stderr
    # The API refuses it as AWS does.
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as err:
        lam.create_function(
            FunctionName=fn_name, Runtime=PY, Role="arn:aws:iam::123456789012:role/r", Handler="app.handler", Code={"ZipFile": make_zip({})}
        )
    assert err.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert err.value.response["Error"]["Message"] == "Uploaded file must be a non-empty zip"
    assert fn_name not in [f["FunctionName"] for f in lam.list_functions()["Functions"]]


@pytest.mark.parametrize("missing", ["Runtime", "Handler"])
def test_a_zip_function_without_runtime_or_handler_gets_awss_message(lam, fn_name, missing):
    from botocore.exceptions import ClientError

    kwargs = {"Runtime": PY, "Handler": "app.handler"}
    del kwargs[missing]
    with pytest.raises(ClientError) as err:
        lam.create_function(
            FunctionName=fn_name, Role="arn:aws:iam::123456789012:role/r", Code={"ZipFile": make_zip({"app.py": "x = 1\n"})}, **kwargs
        )
    assert err.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert (
        err.value.response["Error"]["Message"]
        == "Runtime and Handler are mandatory parameters for functions created with deployment packages."
    )
