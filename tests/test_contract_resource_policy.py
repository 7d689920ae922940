"""PutResourcePolicy, GetResourcePolicy and DeleteResourcePolicy: a function's
(or version's, or alias's) resource-based policy written as one document,
the same policy AddPermission, RemovePermission and GetPolicy edit
statement by statement (AWS: "This operation replaces any existing policy
on the Lambda resource"). And the 20 KB limit AWS sets on that policy,
whichever operation grows it.

Each row names the behaviour it pins. Where AWS's answer is published
(the $LATEST refusal, PreconditionFailedException, the size limit, the
not-found answers shared with GetPolicy) the wording is AWS's; the checks
of a document's statements are Lambdalet's words (AWS's are not
published), each naming what is wrong.
"""

from __future__ import annotations

import json
import sys

import pytest
import requests
from botocore.exceptions import ClientError
from helpers import make_zip

ACCOUNT = "000000000000"
P = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:"
PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ROLE = "arn:aws:iam::123456789012:role/r"
URL_FN = "def handler(e, c):\n    return {'statusCode': 200, 'body': 'hello'}\n"
PARAM = "InvalidParameterValueException"
NOT_FOUND = "ResourceNotFoundException"


@pytest.fixture
def fn(lam, fn_name):
    lam.create_function(FunctionName=fn_name, Runtime=PY, Role=ROLE, Handler="app.handler", Code={"ZipFile": make_zip({"app.py": URL_FN})})
    yield fn_name
    lam.delete_function(FunctionName=fn_name)


@pytest.fixture(scope="module")
def raw(server):
    return server.client(parameter_validation=False)


def doc(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(resource: str, **extra) -> dict:
    return {
        "Sid": "s",
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "lambda:InvokeFunction",
        "Resource": resource,
        **extra,
    }


def _refused(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as exc:
        call()
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def test_put_replaces_what_add_permission_added(lam, fn):
    """AWS: PutResourcePolicy replaces the policy AddPermission built, and
    GetPolicy and GetResourcePolicy read the same policy and RevisionId."""
    lam.add_permission(FunctionName=fn, StatementId="old", Action="lambda:InvokeFunction", Principal="sqs.amazonaws.com")
    before = lam.get_function(FunctionName=fn)["Configuration"]["RevisionId"]
    put = lam.put_resource_policy(ResourceArn=P + fn, Policy=doc(allow(P + fn, Condition={"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::b"}})))
    got = lam.get_resource_policy(ResourceArn=P + fn)
    assert (got["Policy"], got["RevisionId"]) == (put["Policy"], put["RevisionId"])
    assert got["RevisionId"] == lam.get_function(FunctionName=fn)["Configuration"]["RevisionId"] != before
    policy = json.loads(got["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["s"]
    assert json.loads(lam.get_policy(FunctionName=fn)["Policy"]) == policy
    # AddPermission adds to the document put; RemovePermission takes from it.
    lam.add_permission(FunctionName=fn, StatementId="more", Action="lambda:GetFunction", Principal="123456789012")
    assert [s["Sid"] for s in json.loads(lam.get_resource_policy(ResourceArn=P + fn)["Policy"])["Statement"]] == ["s", "more"]
    lam.remove_permission(FunctionName=fn, StatementId="s")
    lam.delete_resource_policy(ResourceArn=P + fn, RevisionId=lam.get_resource_policy(ResourceArn=P + fn)["RevisionId"])
    assert _refused(lambda: lam.get_resource_policy(ResourceArn=P + fn)) == (NOT_FOUND, "The resource you requested does not exist.")
    assert _refused(lambda: lam.get_policy(FunctionName=fn)) == (NOT_FOUND, "The resource you requested does not exist.")


def test_account_ids_become_root_arns_and_statements_keep_aws_order(lam, fn):
    statement = {
        "Resource": P + fn,
        "Action": ["lambda:InvokeFunction", "lambda:GetFunction"],
        "Principal": {"AWS": ["123456789012", "*"]},
        "Effect": "Allow",
        "Sid": "xaccount",
    }
    put = json.loads(lam.put_resource_policy(ResourceArn=P + fn, Policy=doc(statement))["Policy"])
    assert put["Statement"] == [
        {
            "Sid": "xaccount",
            "Effect": "Allow",
            "Principal": {"AWS": ["arn:aws:iam::123456789012:root", "*"]},
            "Action": ["lambda:InvokeFunction", "lambda:GetFunction"],
            "Resource": P + fn,
        }
    ]
    assert list(put["Statement"][0]) == ["Sid", "Effect", "Principal", "Action", "Resource"]


def test_versions_and_aliases_have_their_own_document(lam, fn):
    lam.publish_version(FunctionName=fn)
    alias = lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    lam.put_resource_policy(ResourceArn=P + fn + ":1", Policy=doc(allow(P + fn + ":1")))
    put = lam.put_resource_policy(ResourceArn=P + fn + ":live", Policy=doc(allow(P + fn + ":live")), RevisionId=alias["RevisionId"])
    assert put["RevisionId"] == lam.get_alias(FunctionName=fn, Name="live")["RevisionId"] != alias["RevisionId"]
    assert (
        lam.get_resource_policy(ResourceArn=P + fn + ":1")["RevisionId"]
        == lam.get_function(FunctionName=fn, Qualifier="1")["Configuration"]["RevisionId"]
    )
    assert _refused(lambda: lam.get_resource_policy(ResourceArn=P + fn))[0] == NOT_FOUND  # the function's own is untouched


REFUSALS = [
    pytest.param(
        lambda l, fn: l.put_resource_policy(ResourceArn=P + fn + ":$LATEST", Policy=doc(allow(P + fn))),
        PARAM,
        "We currently do not support adding policies for $LATEST.",
        id="not-on-latest",
    ),
    pytest.param(
        lambda l, fn: l.put_resource_policy(
            ResourceArn=P + fn, Policy=doc(allow(P + fn)), RevisionId="00000000-0000-0000-0000-000000000000"
        ),
        "PreconditionFailedException",
        "The Revision Id provided does not match the latest Revision Id. Call the GetResourcePolicy API to retrieve the latest Revision Id",
        id="put-revision-mismatch",
    ),
    pytest.param(
        lambda l, fn: l.put_resource_policy(ResourceArn=P + "contract-nobody", Policy=doc(allow(P + "contract-nobody"))),
        NOT_FOUND,
        f"Function not found: {P}contract-nobody",
        id="put-missing-function",
    ),
    pytest.param(
        lambda l, fn: l.put_resource_policy(ResourceArn=P + fn + ":noalias", Policy=doc(allow(P + fn + ":noalias"))),
        NOT_FOUND,
        f"Cannot find alias arn: {P}{{fn}}:noalias",
        id="put-missing-alias",
    ),
    pytest.param(
        lambda l, fn: l.put_resource_policy(ResourceArn=P + fn + ":7", Policy=doc(allow(P + fn + ":7"))),
        NOT_FOUND,
        f"Function not found: {P}{{fn}}:7",
        id="put-missing-version",
    ),
    pytest.param(
        lambda l, fn: l.get_resource_policy(ResourceArn=P + "contract-nobody"),
        NOT_FOUND,
        "The resource you requested does not exist.",
        id="get-missing-function",
    ),
    pytest.param(
        lambda l, fn: l.get_resource_policy(ResourceArn=P + fn), NOT_FOUND, "The resource you requested does not exist.", id="get-no-policy"
    ),
    pytest.param(
        lambda l, fn: l.get_resource_policy(ResourceArn=f"arn:aws:lambda:us-east-1:{ACCOUNT}:runtime/my-runtime"),
        NOT_FOUND,
        "The resource you requested does not exist.",
        id="a-runtime-arn-names-nothing-here",
    ),
    pytest.param(
        lambda l, fn: l.delete_resource_policy(ResourceArn=P + fn),
        NOT_FOUND,
        "No policy is associated with the given resource.",
        id="delete-no-policy",
    ),
    pytest.param(
        lambda l, fn: l.get_resource_policy(ResourceArn=f"arn:aws:lambda:eu-central-1:{ACCOUNT}:function:{fn}"),
        NOT_FOUND,
        "Functions from 'eu-central-1' are not reachable in this region ('us-east-1')",
        id="another-region",
    ),
    pytest.param(
        lambda l, fn: l.get_resource_policy(ResourceArn=fn),
        "ValidationException",
        "1 validation error detected: Value '{fn}' at 'resourceArn' failed to satisfy constraint: Member must satisfy regular expression pattern: "
        r"arn:(aws[a-zA-Z-]*)?:lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:(function:[a-zA-Z0-9-_]+(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_])+)?|runtime/[a-zA-Z0-9-_./]+)",
        id="a-name-is-not-a-complete-arn",
    ),
    pytest.param(
        lambda l, fn: l.put_resource_policy(ResourceArn=P + fn, Policy="{not json"), PARAM, "The policy is not valid JSON.", id="not-json"
    ),
    pytest.param(
        lambda l, fn: l.put_resource_policy(ResourceArn=P + fn, Policy='{"Version": "2012-10-17"}'),
        PARAM,
        "The policy must be a JSON object with a Statement.",
        id="no-statement",
    ),
    pytest.param(
        lambda l, fn: l.put_resource_policy(ResourceArn=P + fn, Policy=json.dumps({"Version": "2020-01-01", "Statement": [allow(P + fn)]})),
        PARAM,
        "The policy's Version '2020-01-01' is not a policy language version (2012-10-17 or 2008-10-17).",
        id="unknown-version",
    ),
    pytest.param(
        lambda l, fn: l.put_resource_policy(ResourceArn=P + fn, Policy=doc(allow(P + "another"))),
        PARAM,
        f"A statement's Resource must be the ARN of the resource the policy is for: {P}{{fn}}.",
        id="resource-of-another-function",
    ),
    pytest.param(
        lambda l, fn: l.put_resource_policy(ResourceArn=P + fn, Policy=doc(allow(P + fn, Action="s3:GetObject"))),
        PARAM,
        "A statement's Action must name Lambda actions (lambda:InvokeFunction, lambda:*), not 's3:GetObject'.",
        id="action-of-another-service",
    ),
    pytest.param(
        lambda l, fn: l.put_resource_policy(ResourceArn=P + fn, Policy=doc(allow(P + fn, Effect="Maybe"))),
        PARAM,
        "A statement's Effect must be Allow or Deny, not 'Maybe'.",
        id="effect",
    ),
    pytest.param(
        lambda l, fn: l.put_resource_policy(ResourceArn=P + fn, Policy=doc(allow(P + fn, Principal={"AWS": "nobody"}))),
        PARAM,
        "The provided principal was invalid. Please check the principal and try again.",
        id="principal-as-add-permission-words-it",
    ),
    pytest.param(
        lambda l, fn: l.put_resource_policy(ResourceArn=P + fn, Policy=doc(allow(P + fn, Principal={"Federated": "x"}))),
        PARAM,
        'A statement\'s Principal must be "*", {"AWS": ...} or {"Service": ...}.',
        id="principal-kind",
    ),
    pytest.param(
        lambda l, fn: l.put_resource_policy(
            ResourceArn=P + fn, Policy=doc(allow(P + fn, Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))
        ),
        PARAM,
        "The condition operator IpAddress is not supported by Lambdalet; it evaluates StringEquals, StringLike, ArnEquals, ArnLike, Bool.",
        id="a-condition-this-server-cannot-evaluate-is-refused-not-ignored",
    ),
    pytest.param(
        lambda l, fn: l.put_resource_policy(ResourceArn=P + fn, Policy=doc({**allow(P + fn), "NotAction": "lambda:GetFunction"})),
        PARAM,
        "The policy element NotAction is not supported by Lambdalet; a statement holds Sid, Effect, Principal, Action, Resource, Condition.",
        id="not-elements",
    ),
    pytest.param(
        lambda l, fn: l.put_resource_policy(ResourceArn=P + fn, Policy=doc(allow(P + fn), allow(P + fn))),
        PARAM,
        "The statement id (s) is used by more than one statement of the policy.",
        id="duplicate-sid",
    ),
]


@pytest.mark.parametrize("call,code,message", REFUSALS)
def test_refusals(raw, fn, call, code, message):
    assert _refused(lambda: call(raw, fn)) == (code, message.replace("{fn}", fn))


def test_delete_with_a_stale_revision_is_refused(lam, fn):
    lam.put_resource_policy(ResourceArn=P + fn, Policy=doc(allow(P + fn)))
    assert _refused(lambda: lam.delete_resource_policy(ResourceArn=P + fn, RevisionId="00000000-0000-0000-0000-000000000000")) == (
        "PreconditionFailedException",
        "The Revision Id provided does not match the latest Revision Id. Call the GetResourcePolicy API to retrieve the latest Revision Id",
    )
    assert lam.get_resource_policy(ResourceArn=P + fn)["Policy"]


def test_a_policy_over_20_kb_is_refused_whichever_operation_grows_it(raw, fn):
    """AWS: "The final policy size (N) is bigger than the limit (20480)."
    for AddPermission (measured on the policy's JSON, as GetPolicy returns
    it), and the document as a whole for PutResourcePolicy."""
    arn = "arn:aws:s3:::" + "b" * 150
    added = 0
    while True:
        try:
            raw.add_permission(
                FunctionName=fn, StatementId=f"s{added}", Action="lambda:InvokeFunction", Principal="s3.amazonaws.com", SourceArn=arn
            )
        except ClientError as exc:
            code, message = exc.response["Error"]["Code"], exc.response["Error"]["Message"]
            break
        added += 1
        assert added < 200
    size = len(raw.get_policy(FunctionName=fn)["Policy"])
    assert size <= 20480
    assert code == "PolicyLengthExceededException"
    final = int(message.removeprefix("The final policy size (").split(")")[0])
    assert message == f"The final policy size ({final}) is bigger than the limit (20480)." and final > 20480 and final > size
    # The refused statement was not added.
    assert len(json.loads(raw.get_policy(FunctionName=fn)["Policy"])["Statement"]) == added
    # A document over 20480 characters breaks the model (ValidationException);
    # one under it that grows past the limit as it is stored (account ids
    # become root ARNs) is refused for its final size.
    big = doc(*[allow(P + fn, Sid=f"s{i}", Condition={"ArnLike": {"AWS:SourceArn": arn}}) for i in range(added + 1)])
    assert len(big) > 20480 and _refused(lambda: raw.put_resource_policy(ResourceArn=P + fn, Policy=big))[0] == "ValidationException"
    grows = doc(allow(P + fn, Principal={"AWS": [f"{100000000000 + i}" for i in range(1000)]}))
    assert len(grows) < 20480
    code, message = _refused(lambda: raw.put_resource_policy(ResourceArn=P + fn, Policy=grows))
    assert code == "PolicyLengthExceededException" and message.endswith("is bigger than the limit (20480).")


def _get(url: str) -> int:
    return requests.get(url, timeout=30).status_code


def test_a_deny_statement_wins(lam, fn):
    """IAM's rule within a policy: an explicit Deny beats any Allow. A
    public URL that AWS's two statements open is shut by a Deny put beside
    them, and opens again when the Deny goes."""
    url = lam.create_function_url_config(FunctionName=fn, AuthType="NONE")["FunctionUrl"]
    public = [
        {
            "Sid": "url",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "lambda:InvokeFunctionUrl",
            "Resource": P + fn,
            "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}},
        },
        {
            "Sid": "invoke",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "lambda:InvokeFunction",
            "Resource": P + fn,
            "Condition": {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}},
        },
    ]
    lam.put_resource_policy(ResourceArn=P + fn, Policy=doc(*public))
    assert _get(url) == 200
    deny = {"Sid": "shut", "Effect": "Deny", "Principal": "*", "Action": "lambda:Invoke*", "Resource": P + fn}
    lam.put_resource_policy(ResourceArn=P + fn, Policy=doc(*public, deny))
    assert _get(url) == 403
    lam.remove_permission(FunctionName=fn, StatementId="shut")
    assert _get(url) == 200
