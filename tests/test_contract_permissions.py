"""AddPermission, RemovePermission and GetPolicy as AWS answers them, and the
rule AWS enforces with them: a function URL with AuthType NONE answers 403
unless the policy lets everyone both lambda:InvokeFunctionUrl and
lambda:InvokeFunction (since October 2025)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests
from botocore.exceptions import ClientError
from helpers import allow_public_url, lambdalet_argv, make_zip

ACCOUNT = "000000000000"
P = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:"
PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ROLE = "arn:aws:iam::123456789012:role/r"
URL_FN = "def handler(e, c):\n    return {'statusCode': 200, 'body': 'hello'}\n"
FORBIDDEN = {
    "Message": "Forbidden. For troubleshooting Function URL authorization issues, see: https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html"
}


@pytest.fixture
def fn(lam, fn_name):
    lam.create_function(FunctionName=fn_name, Runtime=PY, Role=ROLE, Handler="app.handler", Code={"ZipFile": make_zip({"app.py": URL_FN})})
    yield fn_name
    lam.delete_function(FunctionName=fn_name)


@pytest.fixture(scope="module")
def raw(server):
    return server.client(parameter_validation=False)


STATEMENTS = [
    pytest.param(
        dict(StatementId="wildcard", Action="lambda:InvokeFunction", Principal="*", SourceAccount=ACCOUNT),
        {"Principal": "*", "Action": "lambda:InvokeFunction", "Condition": {"StringEquals": {"AWS:SourceAccount": ACCOUNT}}},
        id="anyone-from-an-account",
    ),
    pytest.param(
        dict(StatementId="svc", Action="lambda:InvokeFunction", Principal="s3.amazonaws.com", SourceArn="arn:aws:s3:::bucket"),
        {
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "lambda:InvokeFunction",
            "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::bucket"}},
        },
        id="a-service-principal-with-its-source",
    ),
    pytest.param(
        dict(StatementId="acct", Action="lambda:GetFunction", Principal="123456789012"),
        {"Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "lambda:GetFunction"},
        id="an-account-id-becomes-its-root-arn",
    ),
    pytest.param(
        dict(StatementId="user", Action="lambda:InvokeFunction", Principal="arn:aws:iam::123456789012:user/ana"),
        {"Principal": {"AWS": "arn:aws:iam::123456789012:user/ana"}, "Action": "lambda:InvokeFunction"},
        id="an-iam-arn-stays-as-it-is",
    ),
    pytest.param(
        dict(
            StatementId="url",
            Action="lambda:InvokeFunctionUrl",
            Principal="*",
            SourceArn="arn:aws:s3:::b",
            SourceAccount=ACCOUNT,
            PrincipalOrgID="o-1234567890",
            FunctionUrlAuthType="NONE",
        ),
        {
            "Principal": "*",
            "Action": "lambda:InvokeFunctionUrl",
            "Condition": {
                "StringEquals": {"AWS:SourceAccount": ACCOUNT, "lambda:FunctionUrlAuthType": "NONE", "aws:PrincipalOrgID": "o-1234567890"},
                "ArnLike": {"AWS:SourceArn": "arn:aws:s3:::b"},
            },
        },
        id="every-optional-condition",
    ),
    pytest.param(
        dict(StatementId="alexa", Action="lambda:InvokeFunction", Principal="*", EventSourceToken="amzn1.ask.skill.x-1"),
        {
            "Principal": "*",
            "Action": "lambda:InvokeFunction",
            "Condition": {"StringEquals": {"lambda:EventSourceToken": "amzn1.ask.skill.x-1"}},
        },
        id="an-event-source-token",
    ),
    pytest.param(
        dict(StatementId="via", Action="lambda:InvokeFunction", Principal="*", InvokedViaFunctionUrl=True),
        {"Principal": "*", "Action": "lambda:InvokeFunction", "Condition": {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}},
        id="invoked-via-a-function-url",
    ),
]


@pytest.mark.parametrize("kwargs,expected", STATEMENTS)
def test_statement_json(lam, fn, kwargs, expected):
    added = lam.add_permission(FunctionName=fn, **kwargs)
    assert added["ResponseMetadata"]["HTTPStatusCode"] == 201
    statement = json.loads(added["Statement"])
    assert statement == {"Sid": kwargs["StatementId"], "Effect": "Allow", "Resource": P + fn, **expected}
    # AWS's key order: Sid, Effect, Principal, Action, Resource, Condition.
    assert list(statement) == ["Sid", "Effect", "Principal", "Action", "Resource"] + (["Condition"] if "Condition" in expected else [])


def test_policy_document_and_its_revision(lam, fn):
    before = lam.get_function(FunctionName=fn)["Configuration"]["RevisionId"]
    lam.add_permission(FunctionName=fn, StatementId="s3", Action="lambda:InvokeFunction", Principal="s3.amazonaws.com")
    lam.add_permission(FunctionName=fn, StatementId="sqs", Action="lambda:InvokeFunction", Principal="sqs.amazonaws.com")
    got = lam.get_policy(FunctionName=fn)
    doc = json.loads(got["Policy"])
    assert (doc["Version"], doc["Id"], [s["Sid"] for s in doc["Statement"]]) == ("2012-10-17", "default", ["s3", "sqs"])
    # The policy's RevisionId is the function's, which each change renews.
    after = lam.get_function(FunctionName=fn)["Configuration"]["RevisionId"]
    assert got["RevisionId"] == after != before
    lam.remove_permission(FunctionName=fn, StatementId="sqs", RevisionId=after)
    assert [s["Sid"] for s in json.loads(lam.get_policy(FunctionName=fn)["Policy"])["Statement"]] == ["s3"]
    lam.remove_permission(FunctionName=fn, StatementId="s3")
    with pytest.raises(ClientError) as exc:
        lam.get_policy(FunctionName=fn)
    assert exc.value.response["Error"]["Message"] == "The resource you requested does not exist."


def _refused(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as exc:
        call()
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def test_refusals(raw, fn):
    add = dict(FunctionName=fn, Action="lambda:InvokeFunction", Principal="s3.amazonaws.com")
    raw.add_permission(StatementId="s3", **add)
    assert _refused(lambda: raw.add_permission(StatementId="s3", **add)) == (
        "ResourceConflictException",
        "The statement id (s3) provided already exists. Please provide a new statement id, or remove the existing statement.",
    )
    assert _refused(lambda: raw.add_permission(StatementId="example.com", **add)) == (
        "ValidationException",
        "1 validation error detected: Value 'example.com' at 'statementId' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)",
    )
    assert _refused(lambda: raw.add_permission(StatementId="x", Qualifier="$LATEST", **add)) == (
        "InvalidParameterValueException",
        "We currently do not support adding policies for $LATEST.",
    )
    assert _refused(
        lambda: raw.add_permission(FunctionName=fn, StatementId="x", Action="lambda:InvokeFunction", Principal="invalid.nonaws.com")
    ) == ("InvalidParameterValueException", "The provided principal was invalid. Please check the principal and try again.")
    assert _refused(
        lambda: raw.add_permission(
            FunctionName=P + fn + ":1", StatementId="x", Qualifier="2", Action="lambda:InvokeFunction", Principal="*"
        )
    ) == ("InvalidParameterValueException", "The derived qualifier from the function name does not match the specified qualifier.")
    assert _refused(lambda: raw.add_permission(StatementId="x", RevisionId="wrong", **add)) == (
        "PreconditionFailedException",
        "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API to retrieve the latest Revision Id",
    )
    assert _refused(
        lambda: raw.add_permission(FunctionName="contract-nobody", StatementId="x", Action="lambda:InvokeFunction", Principal="*")
    ) == ("ResourceNotFoundException", f"Function not found: {P}contract-nobody")
    assert _refused(lambda: raw.add_permission(StatementId="x", Qualifier="noalias", **add)) == (
        "ResourceNotFoundException",
        f"Cannot find alias arn: {P}{fn}:noalias",
    )
    assert _refused(lambda: raw.add_permission(StatementId="x", Qualifier="42", **add)) == (
        "ResourceNotFoundException",
        f"Function not found: {P}{fn}:42",
    )
    assert _refused(lambda: raw.remove_permission(FunctionName=fn, StatementId="non-existent")) == (
        "ResourceNotFoundException",
        "Statement non-existent is not found in resource policy.",
    )
    assert _refused(lambda: raw.remove_permission(FunctionName="contract-nobody", StatementId="s3")) == (
        "ResourceNotFoundException",
        f"No policy found for: {P}contract-nobody",
    )
    assert _refused(lambda: raw.remove_permission(FunctionName=fn, StatementId="s3", RevisionId="wrong")) == (
        "PreconditionFailedException",
        "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API to retrieve the latest Revision Id",
    )
    raw.remove_permission(FunctionName=fn, StatementId="s3")
    assert _refused(lambda: raw.remove_permission(FunctionName=fn, StatementId="s3")) == (
        "ResourceNotFoundException",
        "No policy is associated with the given resource.",
    )
    assert _refused(lambda: raw.get_policy(FunctionName="contract-nobody")) == (
        "ResourceNotFoundException",
        "The resource you requested does not exist.",
    )


def test_versions_and_aliases_have_policies_of_their_own(lam, fn):
    lam.add_permission(FunctionName=fn, StatementId="fn", Action="lambda:InvokeFunction", Principal="*")
    lam.publish_version(FunctionName=fn)
    # A new version starts with no policy; one added to it names it.
    assert _refused(lambda: lam.get_policy(FunctionName=fn, Qualifier="1"))[1] == "The resource you requested does not exist."
    lam.add_permission(FunctionName=fn, Qualifier="1", StatementId="v1", Action="lambda:InvokeFunction", Principal="*")
    got = lam.get_policy(FunctionName=fn, Qualifier="1")
    assert [s["Resource"] for s in json.loads(got["Policy"])["Statement"]] == [P + fn + ":1"]
    assert got["RevisionId"] == lam.get_function(FunctionName=fn, Qualifier="1")["Configuration"]["RevisionId"]
    alias = lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    lam.add_permission(
        FunctionName=fn, Qualifier="live", StatementId="a", Action="lambda:InvokeFunction", Principal="*", RevisionId=alias["RevisionId"]
    )
    got = lam.get_policy(FunctionName=fn, Qualifier="live")
    assert json.loads(got["Policy"])["Statement"][0]["Resource"] == P + fn + ":live"
    assert got["RevisionId"] == lam.get_alias(FunctionName=fn, Name="live")["RevisionId"] != alias["RevisionId"]
    # The function's own policy is untouched.
    assert [s["Sid"] for s in json.loads(lam.get_policy(FunctionName=fn)["Policy"])["Statement"]] == ["fn"]


def _get(url: str) -> tuple[int, object]:
    r = requests.get(url, timeout=30)
    return r.status_code, (r.json() if r.status_code == 403 else r.text)


def test_a_public_url_needs_both_statements(lam, fn):
    url = lam.create_function_url_config(FunctionName=fn, AuthType="NONE")["FunctionUrl"]
    r = requests.get(url, timeout=30)
    assert (r.status_code, r.headers["x-amzn-ErrorType"], r.json()) == (403, "AccessDeniedException", FORBIDDEN)
    lam.add_permission(FunctionName=fn, StatementId="url", Action="lambda:InvokeFunctionUrl", Principal="*", FunctionUrlAuthType="NONE")
    assert _get(url) == (403, FORBIDDEN)  # the rule since October 2025 wants lambda:InvokeFunction too
    lam.add_permission(FunctionName=fn, StatementId="invoke", Action="lambda:InvokeFunction", Principal="*", InvokedViaFunctionUrl=True)
    assert _get(url) == (200, "hello")
    lam.remove_permission(FunctionName=fn, StatementId="invoke")
    assert _get(url) == (403, FORBIDDEN)


@pytest.mark.parametrize(
    "statements",
    [
        pytest.param(
            [dict(Action="lambda:InvokeFunctionUrl", FunctionUrlAuthType="AWS_IAM"), dict(Action="lambda:InvokeFunction")],
            id="for-another-auth-type",
        ),
        pytest.param(
            [dict(Action="lambda:InvokeFunctionUrl", SourceAccount=ACCOUNT), dict(Action="lambda:InvokeFunction")],
            id="conditioned-on-a-source-account",
        ),
        pytest.param(
            [dict(Action="lambda:InvokeFunctionUrl", Principal="123456789012"), dict(Action="lambda:InvokeFunction")],
            id="for-one-account-only",
        ),
    ],
)
def test_statements_that_do_not_open_a_url_to_everyone(lam, fn, statements):
    url = lam.create_function_url_config(FunctionName=fn, AuthType="NONE")["FunctionUrl"]
    for i, kwargs in enumerate(statements):
        lam.add_permission(FunctionName=fn, StatementId=f"s{i}", **{"Principal": "*", **kwargs})
    assert _get(url) == (403, FORBIDDEN)


def test_an_alias_url_follows_the_aliases_policy(lam, fn):
    lam.publish_version(FunctionName=fn)
    lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    made = lam.create_function_url_config(FunctionName=fn, Qualifier="live", AuthType="NONE")
    assert made["FunctionArn"] == P + fn + ":live"
    allow_public_url(lam, fn)  # the function's policy does not open its alias's URL
    assert _get(made["FunctionUrl"]) == (403, FORBIDDEN)
    allow_public_url(lam, fn, "live")
    assert _get(made["FunctionUrl"]) == (200, "hello")
    assert [c["FunctionArn"] for c in lam.list_function_url_configs(FunctionName=fn)["FunctionUrlConfigs"]] == [P + fn + ":live"]
    lam.delete_alias(FunctionName=fn, Name="live")
    assert _get(made["FunctionUrl"])[0] == 404


def test_cli_url_create_makes_it_public_as_the_console_does(server, lam, fn):
    cli = lambdalet_argv("--endpoint", server.url, "--data-dir", str(server.data_dir))
    made = subprocess.run([*cli, "url", "create", fn], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    url = made.stdout.strip()
    assert _get(url) == (200, "hello")
    sids = [s["Sid"] for s in json.loads(lam.get_policy(FunctionName=fn)["Policy"])["Statement"]]
    assert sids == ["FunctionURLAllowPublicAccess", "FunctionURLAllowInvokeAction"]
    gone = subprocess.run([*cli, "url", "rm", fn], capture_output=True, text=True, timeout=60)
    assert gone.returncode == 0, gone.stderr
    assert _refused(lambda: lam.get_policy(FunctionName=fn))[0] == "ResourceNotFoundException"
    assert _get(url)[0] == 404
    iam = subprocess.run([*cli, "url", "create", fn, "--auth-type", "AWS_IAM"], capture_output=True, text=True, timeout=60)
    assert iam.returncode == 0, iam.stderr
    assert _refused(lambda: lam.get_policy(FunctionName=fn))[0] == "ResourceNotFoundException"


def test_s3_may_invoke_only_what_the_policy_grants_it(server, lam, fn):
    """The policy is what S3 asks (as on AWS): a notification configuration
    naming a function is refused ("Unable to validate") until the function
    lets s3.amazonaws.com invoke it for that bucket."""
    s3 = server.aws("s3")
    bucket = fn.lower()
    s3.create_bucket(Bucket=bucket)
    config = {"LambdaFunctionConfigurations": [{"LambdaFunctionArn": P + fn, "Events": ["s3:ObjectCreated:*"]}]}
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)
    assert exc.value.response["Error"]["Message"] == "Unable to validate the following destination configurations"
    # A grant for another bucket does not do.
    lam.add_permission(
        FunctionName=fn,
        StatementId="other",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn="arn:aws:s3:::another-bucket",
        SourceAccount=ACCOUNT,
    )
    with pytest.raises(ClientError):
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)
    lam.add_permission(
        FunctionName=fn,
        StatementId="s3",
        Action="lambda:InvokeFunction",
        Principal="s3.amazonaws.com",
        SourceArn=f"arn:aws:s3:::{bucket}",
        SourceAccount=ACCOUNT,
    )
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)
    assert s3.get_bucket_notification_configuration(Bucket=bucket)["LambdaFunctionConfigurations"][0]["LambdaFunctionArn"] == P + fn
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    s3.delete_bucket(Bucket=bucket)


def test_wildcards_in_a_source_arn(lam, fn):
    """AddPermission's SourceArn is compared with ArnLike: * and ? match."""
    from lambdalet.gateway.functions import policy

    lam.add_permission(
        FunctionName=fn, StatementId="s3", Action="lambda:InvokeFunction", Principal="s3.amazonaws.com", SourceArn="arn:aws:s3:::logs-*"
    )
    statements = json.loads(lam.get_policy(FunctionName=fn)["Policy"])["Statement"]
    assert policy.allows_service(
        statements, "s3.amazonaws.com", "lambda:InvokeFunction", P + fn, source_arn="arn:aws:s3:::logs-2026", source_account=None
    )
    assert not policy.allows_service(
        statements, "s3.amazonaws.com", "lambda:InvokeFunction", P + fn, source_arn="arn:aws:s3:::data", source_account=None
    )
    assert not policy.allows_service(
        statements, "sqs.amazonaws.com", "lambda:InvokeFunction", P + fn, source_arn="arn:aws:s3:::logs-1", source_account=None
    )
