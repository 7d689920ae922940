"""botocore, the aws CLI and the AWS SDK for JavaScript v3 see the same error
codes and messages: each row is sent by all three (the JS SDK's Lambda
client comes from npm, installed once per machine into the test cache), and
each must read AWS's answer from the same bytes."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError
from helpers import make_zip
from runtime_builds import cache_dir, tool

from lambdalet.gateway.functions import unsupported_settings

JS = pathlib.Path(__file__).parent / "js_sdk"
ACCOUNT = "000000000000"
P = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:"
NOBODY = "contract-js-nobody"
PRESENT = "contract-js-present"  # made by the test, with an alias "live"
STALE = "00000000-0000-0000-0000-000000000000"
CSC = f"arn:aws:lambda:us-east-1:{ACCOUNT}:code-signing-config:csc-0123456789abcdefg"
URL_QUALIFIER = r"((?!^\d+$)^[0-9a-zA-Z-_]+$)"

CASES = [
    pytest.param(
        "get_function",
        {"FunctionName": NOBODY},
        ["get-function", "--function-name", NOBODY],
        "GetFunctionCommand",
        404,
        "ResourceNotFoundException",
        f"Function not found: {P}{NOBODY}",
        id="not-found",
    ),
    pytest.param(
        "get_function",
        {"FunctionName": f"arn:aws:lambda:eu-central-1:{ACCOUNT}:function:{NOBODY}"},
        ["get-function", "--function-name", f"arn:aws:lambda:eu-central-1:{ACCOUNT}:function:{NOBODY}"],
        "GetFunctionCommand",
        404,
        "ResourceNotFoundException",
        "Functions from 'eu-central-1' are not reachable in this region ('us-east-1')",
        id="another-region",
    ),
    pytest.param(
        "create_alias",
        {"FunctionName": NOBODY, "Name": "2024", "FunctionVersion": "1"},
        ["create-alias", "--function-name", NOBODY, "--name", "2024", "--function-version", "1"],
        "CreateAliasCommand",
        400,
        "ValidationException",
        "1 validation error detected: Value '2024' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)",
        id="validation-pattern",
    ),
    pytest.param(
        "list_functions",
        {"FunctionVersion": "invalid"},
        ["list-functions", "--function-version", "invalid"],
        "ListFunctionsCommand",
        400,
        "ValidationException",
        "1 validation error detected: Value 'invalid' at 'functionVersion' failed to satisfy constraint: Member must satisfy enum value set: [ALL]",
        id="validation-enum",
    ),
    pytest.param(
        "get_function_url_config",
        {"FunctionName": NOBODY, "Qualifier": "1"},
        ["get-function-url-config", "--function-name", NOBODY, "--qualifier", "1"],
        "GetFunctionUrlConfigCommand",
        400,
        "ValidationException",
        f"1 validation error detected: Value '1' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: {URL_QUALIFIER}",
        id="validation-url-qualifier",
    ),
    pytest.param(
        "put_function_event_invoke_config",
        {"FunctionName": NOBODY, "MaximumRetryAttempts": 1},
        ["put-function-event-invoke-config", "--function-name", NOBODY, "--maximum-retry-attempts", "1"],
        "PutFunctionEventInvokeConfigCommand",
        404,
        "ResourceNotFoundException",
        "The function doesn't exist.",
        id="event-config-not-found",
    ),
    pytest.param(
        "list_capacity_providers",
        {},
        ["list-capacity-providers"],
        "ListCapacityProvidersCommand",
        400,
        "InvalidParameterValueException",
        "The ListCapacityProviders operation is not supported by Lambdalet: capacity providers and managed-instance scaling place "
        "functions on a fleet of EC2 instances; on one host there is no fleet to manage.",
        id="unsupported-operation",
    ),
    pytest.param(
        "get_function",
        {"FunctionName": f"arn:aws:lambda:us-east-1:123456789012:function:{NOBODY}"},
        ["get-function", "--function-name", f"arn:aws:lambda:us-east-1:123456789012:function:{NOBODY}"],
        "GetFunctionCommand",
        403,
        "AccessDeniedException",
        f"You are not authorized to access arn:aws:lambda:us-east-1:123456789012:function:{NOBODY}: it belongs to account 123456789012, "
        f"and this server serves account {ACCOUNT}.",
        id="another-account",
    ),
    pytest.param(
        "get_function",
        {"FunctionName": f"{P}{NOBODY}:1", "Qualifier": "2"},
        ["get-function", "--function-name", f"{P}{NOBODY}:1", "--qualifier", "2"],
        "GetFunctionCommand",
        400,
        "InvalidParameterValueException",
        "The derived qualifier from the function name does not match the specified qualifier.",
        id="semantic",
    ),
    pytest.param(
        "create_alias",
        {"FunctionName": NOBODY, "Name": "2024", "FunctionVersion": "x"},
        ["create-alias", "--function-name", NOBODY, "--name", "2024", "--function-version", "x"],
        "CreateAliasCommand",
        400,
        "ValidationException",
        "2 validation errors detected: Value '2024' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: "
        "(?!^[0-9]+$)([a-zA-Z0-9-_]+); Value 'x' at 'functionVersion' failed to satisfy constraint: Member must satisfy regular expression "
        r"pattern: (\$LATEST(\.PUBLISHED)?|[0-9]+)",
        id="two-validation-errors",
    ),
    pytest.param(
        "create_alias",
        {"FunctionName": PRESENT, "Name": "live", "FunctionVersion": "1"},
        ["create-alias", "--function-name", PRESENT, "--name", "live", "--function-version", "1"],
        "CreateAliasCommand",
        409,
        "ResourceConflictException",
        f"Alias already exists: {P}{PRESENT}:live",
        id="conflict",
    ),
    pytest.param(
        "update_function_configuration",
        {"FunctionName": PRESENT, "Description": "x", "RevisionId": STALE},
        ["update-function-configuration", "--function-name", PRESENT, "--description", "x", "--revision-id", STALE],
        "UpdateFunctionConfigurationCommand",
        412,
        "PreconditionFailedException",
        "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
        id="precondition",
    ),
    pytest.param(
        "update_function_configuration",
        {"FunctionName": PRESENT, "DurableConfig": {"RetentionPeriodInDays": 7}},
        ["update-function-configuration", "--function-name", PRESENT, "--durable-config", "RetentionPeriodInDays=7"],
        "UpdateFunctionConfigurationCommand",
        400,
        "InvalidParameterValueException",
        f"DurableConfig is not supported by Lambdalet: {unsupported_settings.DURABLE}.",
        id="unsupported-setting",
    ),
    pytest.param(
        "put_function_code_signing_config",
        {"FunctionName": NOBODY, "CodeSigningConfigArn": CSC},
        ["put-function-code-signing-config", "--function-name", NOBODY, "--code-signing-config-arn", CSC],
        "PutFunctionCodeSigningConfigCommand",
        404,
        "CodeSigningConfigNotFoundException",
        f"The code signing configuration cannot be found. Check that the provided configuration is not deleted: {CSC}.",
        id="code-signing-config-missing",
    ),
    # The aws CLI v1 in use (its own copy of botocore's data) predates the
    # resource-policy operations: botocore and the JS SDK only.
    pytest.param(
        "get_resource_policy",
        {"ResourceArn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:runtime/my-runtime"},
        None,
        "GetResourcePolicyCommand",
        404,
        "ResourceNotFoundException",
        "The resource you requested does not exist.",
        id="resource-policy-missing",
    ),
    pytest.param(
        "put_resource_policy",
        {"ResourceArn": f"{P}{NOBODY}:$LATEST", "Policy": "{}"},
        None,
        "PutResourcePolicyCommand",
        400,
        "InvalidParameterValueException",
        "We currently do not support adding policies for $LATEST.",
        id="resource-policy-on-latest",
    ),
]


@pytest.fixture(scope="module")
def js_sdk() -> pathlib.Path:
    """node_modules with @aws-sdk/client-lambda, installed from npm once
    per package.json into the test cache (a lock keeps concurrent runs to
    one install)."""
    digest = hashlib.sha256((JS / "package.json").read_bytes() + (JS / "calls.mjs").read_bytes()).hexdigest()[:16]
    home = cache_dir() / f"js-sdk-{digest}"
    with open(cache_dir() / "js-sdk.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / "node_modules" / "@aws-sdk" / "client-lambda").is_dir():
            staging = home.with_name(home.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            shutil.copy(JS / "package.json", staging)
            subprocess.run(
                [tool("npm"), "install", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=staging,
                check=True,
                timeout=600,
                capture_output=True,
            )
            shutil.copy(JS / "calls.mjs", staging)
            shutil.rmtree(home, ignore_errors=True)
            staging.rename(home)
    return home


def _js(server, home: pathlib.Path, calls: list[dict]) -> list[dict]:
    key, secret = server.credentials()
    spec = {"endpoint": server.url, "accessKeyId": key, "secretAccessKey": secret, "calls": calls}
    done = subprocess.run([tool("node"), str(home / "calls.mjs")], input=json.dumps(spec), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _cli(server, args: list[str]) -> tuple[str, str]:
    key, secret = server.credentials()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    env.pop("AWS_PROFILE", None)
    # The venv's own aws CLI (a test dependency), on the same botocore.
    aws = os.path.join(os.path.dirname(sys.executable), "aws")
    done = subprocess.run([aws, "--endpoint-url", server.url, "lambda", *args], capture_output=True, text=True, env=env, timeout=120)
    m = re.search(r"An error occurred \((\w+)\) when calling the \w+ operation: (.*)", done.stderr, re.S)
    assert m is not None, done.stderr
    return m.group(1), m.group(2).strip()


@pytest.mark.cli
def test_three_clients_read_the_same_errors(server, js_sdk):
    raw = server.client(parameter_validation=False)
    raw.create_function(
        FunctionName=PRESENT,
        Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
        Role="arn:aws:iam::123456789012:role/r",
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 1\n"})},
    )
    try:
        raw.publish_version(FunctionName=PRESENT)
        raw.create_alias(FunctionName=PRESENT, Name="live", FunctionVersion="1")
        js_calls = []
        expected = []
        for case in CASES:
            method, kwargs, cli_args, command, status, code, message = case.values
            with pytest.raises(ClientError) as exc:
                getattr(raw, method)(**kwargs)
            resp = exc.value.response
            assert (resp["ResponseMetadata"]["HTTPStatusCode"], resp["Error"]["Code"], resp["Error"]["Message"]) == (
                status,
                code,
                message,
            ), case.id
            if cli_args is not None:
                assert _cli(server, cli_args) == (code, message), case.id
            js_calls.append({"command": command, "input": kwargs})
            expected.append({"ok": False, "name": code, "message": message, "status": status})
        assert _js(server, js_sdk, js_calls) == expected
    finally:
        raw.delete_function(FunctionName=PRESENT)
