"""ValidationException as AWS produces it: generated from botocore's model,
checked before anything looks for a resource, worded as AWS words it.

Each row names the AWS behaviour it pins; the expected messages are AWS's
answers to the same requests (as published in AWS's documentation, issue
threads and recorded answers of real Lambda), with this server's account
and region.
"""

from __future__ import annotations

import json
import sys

import pytest
from botocore.exceptions import ClientError
from helpers import make_zip, signed_request

ACCOUNT = "000000000000"  # the server's default account
REGION = "us-east-1"
PREFIX = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ROLE = "arn:aws:iam::123456789012:role/r"
ZIP = make_zip({"app.py": "def handler(e, c):\n    return e\n"})

ROLE_PATTERN = r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"
NAME_PATTERN = r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
NAMESPACED_PATTERN = r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+))?"
URL_QUALIFIER_PATTERN = r"((?!^\d+$)^[0-9a-zA-Z-_]+$)"


@pytest.fixture(scope="module")
def raw(server):
    """A client that sends what it is given: botocore's own checks (which
    AWS's SDKs for other languages do not make) are off."""
    return server.client(parameter_validation=False)


def create(**overrides):
    kwargs = dict(FunctionName="contract-validation", Runtime=PY, Role=ROLE, Handler="app.handler", Code={"ZipFile": ZIP})
    kwargs.update(overrides)
    return lambda lam: lam.create_function(**kwargs)


def one(text: str) -> str:
    return "1 validation error detected: " + text


V = "ValidationException"
P = "InvalidParameterValueException"

CASES = [
    pytest.param(
        create(Role="r1"),
        V,
        one(f"Value 'r1' at 'role' failed to satisfy constraint: Member must satisfy regular expression pattern: {ROLE_PATTERN}"),
        id="role-breaks-its-pattern",
    ),
    pytest.param(
        create(Architectures=["x86_64", "arm64"]),
        V,
        one("Value '[x86_64, arm64]' at 'architectures' failed to satisfy constraint: Member must have length less than or equal to 1"),
        id="a-list-too-long-is-a-length-violation",
    ),
    pytest.param(
        create(Architectures=["X86_64"]),
        V,
        one(
            "Value '[X86_64]' at 'architectures' failed to satisfy constraint: Member must satisfy constraint: "
            "[Member must satisfy enum value set: [x86_64, arm64], Member must not be null]"
        ),
        id="a-list-element-lists-its-shapes-constraints",
    ),
    pytest.param(
        create(FunctionName="invalid:function:name"),
        V,
        one(
            f"Value 'invalid:function:name' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: {NAME_PATTERN}"
        ),
        id="function-name-breaks-its-pattern",
    ),
    pytest.param(
        create(FunctionName=PREFIX + "a" * (141 - len(PREFIX))),
        V,
        one(
            f"Value '{PREFIX + 'a' * (141 - len(PREFIX))}' at 'functionName' failed to satisfy constraint: Member must have length less than or equal to 140"
        ),
        id="an-arn-over-140-is-a-length-violation-not-a-pattern",
    ),
    pytest.param(
        create(FunctionName="a" * 65),
        P,
        one(f"Value '{'a' * 65}' at 'functionName' failed to satisfy constraint: Member must have length less than or equal to 64"),
        id="a-bare-name-over-64-is-semantic-invalid-parameter",
    ),
    pytest.param(
        create(FunctionName="a b" * 50),
        V,
        "2 validation errors detected: "
        f"Value '{'a b' * 50}' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: {NAME_PATTERN}; "
        f"Value '{'a b' * 50}' at 'functionName' failed to satisfy constraint: Member must have length less than or equal to 140",
        id="pattern-and-length-are-two-violations",
    ),
    pytest.param(
        create(Role="r1", MemorySize=64),
        V,
        "2 validation errors detected: "
        f"Value 'r1' at 'role' failed to satisfy constraint: Member must satisfy regular expression pattern: {ROLE_PATTERN}; "
        "Value '64' at 'memorySize' failed to satisfy constraint: Member must have value greater than or equal to 128",
        id="violations-in-the-models-member-order",
    ),
    pytest.param(
        create(Environment={"Variables": {"1BAD": "x"}}),
        V,
        one(
            "Value at 'environment.variables' failed to satisfy constraint: Map keys must satisfy constraint: "
            "[Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]"
        ),
        id="sensitive-values-are-not-shown",
    ),
    pytest.param(
        create(Timeout=901),
        P,
        one("Value '901' at 'timeout' failed to satisfy constraint: Member must have value less than or equal to 900"),
        id="timeout-over-900-is-semantic",
    ),
    pytest.param(
        create(MemorySize=10241),
        P,
        one("Value '10241' at 'memorySize' failed to satisfy constraint: Member must have value less than or equal to 10240"),
        id="memory-over-10240-is-semantic",
    ),
    pytest.param(
        create(SnapStart={"ApplyOn": "invalidOption"}),
        V,
        one(
            "Value 'invalidOption' at 'snapStart.applyOn' failed to satisfy constraint: Member must satisfy enum value set: [PublishedVersions, None]"
        ),
        id="nested-members-are-dotted",
    ),
    pytest.param(
        lambda lam: lam.list_functions(FunctionVersion="invalid"),
        V,
        one("Value 'invalid' at 'functionVersion' failed to satisfy constraint: Member must satisfy enum value set: [ALL]"),
        id="query-enum",
    ),
    pytest.param(
        lambda lam: lam.list_functions(MaxItems=0),
        V,
        one("Value '0' at 'maxItems' failed to satisfy constraint: Member must have value greater than or equal to 1"),
        id="query-range",
    ),
    pytest.param(
        lambda lam: lam.create_alias(FunctionName="no-such-function", Name="2024", FunctionVersion="1"),
        V,
        one(
            "Value '2024' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)"
        ),
        id="validated-before-the-function-is-looked-for",
    ),
    pytest.param(
        lambda lam: lam.create_alias(
            FunctionName="no-such-function", Name="a", FunctionVersion="1", RoutingConfig={"AdditionalVersionWeights": {"2": 2}}
        ),
        V,
        one(
            "Value '{2=2.0}' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map value must satisfy constraint: "
            "[Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0, Member must not be null]"
        ),
        id="map-values-list-their-shapes-constraints",
    ),
    pytest.param(
        lambda lam: lam.create_alias(
            FunctionName="no-such-function", Name="a", FunctionVersion="1", RoutingConfig={"AdditionalVersionWeights": {"$LATEST": 0.5}}
        ),
        V,
        one(
            "Value '{$LATEST=0.5}' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map keys must satisfy constraint: "
            "[Member must have length less than or equal to 1024, Member must have length greater than or equal to 1, Member must satisfy regular expression pattern: [0-9]+]"
        ),
        id="map-keys-list-their-shapes-constraints",
    ),
    pytest.param(
        lambda lam: lam.put_provisioned_concurrency_config(
            FunctionName="no-such-function", Qualifier="1", ProvisionedConcurrentExecutions=0
        ),
        V,
        one(
            "Value '0' at 'provisionedConcurrentExecutions' failed to satisfy constraint: Member must have value greater than or equal to 1"
        ),
        id="integer-minimum",
    ),
    pytest.param(
        lambda lam: lam.create_function_url_config(FunctionName="no-such-function", Qualifier="1", AuthType="NONE"),
        V,
        one(
            f"Value '1' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: {URL_QUALIFIER_PATTERN}"
        ),
        id="url-qualifier-cannot-be-a-version",
    ),
    pytest.param(
        lambda lam: lam.get_function_url_config(FunctionName="no-such-function", Qualifier="$LATEST"),
        V,
        one(
            f"Value '$LATEST' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: {URL_QUALIFIER_PATTERN}"
        ),
        id="url-qualifier-cannot-be-latest",
    ),
    pytest.param(
        lambda lam: lam.untag_resource(Resource=PREFIX + "no-such-function", TagKeys=[]),
        V,
        one("Value null at 'tagKeys' failed to satisfy constraint: Member must not be null"),
        id="a-missing-required-member-is-null",
    ),
    pytest.param(
        lambda lam: lam.put_function_event_invoke_config(
            FunctionName="no-such-function",
            DestinationConfig={"OnFailure": {"Destination": f"arn:aws:_-/!lambda:{REGION}:{ACCOUNT}:function:f"}},
        ),
        V,
        one(
            f"Value 'arn:aws:_-/!lambda:{REGION}:{ACCOUNT}:function:f' at 'destinationConfig.onFailure.destination' failed to satisfy constraint: "
            r"Member must satisfy regular expression pattern: $|kafka://([^.]([a-zA-Z0-9\-_.]{0,248}))|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1})?:(\d{12})?:(.*)"
        ),
        id="deeply-nested-member",
    ),
    pytest.param(
        lambda lam: lam.invoke(FunctionName="no-such-function", InvocationType="Sometimes"),
        V,
        one(
            "Value 'Sometimes' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
        ),
        id="invoke-header-enum",
    ),
    pytest.param(
        lambda lam: lam.invoke(FunctionName=f"arn:aws:lambda:{REGION}:123400000000@function:myfn"),
        V,
        one(
            f"Value 'arn:aws:lambda:{REGION}:123400000000@function:myfn' at 'functionName' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {NAMESPACED_PATTERN}"
        ),
        id="invoke-name-pattern-before-lookup",
    ),
    pytest.param(
        lambda lam: lam.get_function(FunctionName="no-such-function", Qualifier="no good"),
        V,
        one(
            "Value 'no good' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: "
            r"\$(LATEST(\.PUBLISHED)?)|[a-zA-Z0-9-_$]+"
        ),
        id="a-bad-qualifier-before-not-found",
    ),
]


@pytest.mark.parametrize("call,code,message", CASES)
def test_model_and_semantic_refusals(raw, call, code, message):
    with pytest.raises(ClientError) as exc:
        call(raw)
    resp = exc.value.response
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert resp["Error"]["Code"] == code
    assert resp["Error"]["Message"] == message


def test_validation_body_is_aws_shape(server):
    """AWS's ValidationException body is {"message": ...} (no Type), with
    the type in x-amzn-ErrorType."""
    r = signed_request(server, "GET", "/2015-03-31/functions?FunctionVersion=invalid")
    assert r.status_code == 400
    assert r.headers["x-amzn-ErrorType"] == "ValidationException"
    assert set(r.json()) == {"message"}


def test_required_members_missing_from_the_body(server):
    body = json.dumps({"FunctionName": "contract-missing", "Runtime": PY, "Handler": "app.handler"}).encode()
    r = signed_request(server, "POST", "/2015-03-31/functions", body)
    assert r.status_code == 400 and r.headers["x-amzn-ErrorType"] == "ValidationException"
    assert r.json()["message"] == (
        "2 validation errors detected: "
        "Value null at 'role' failed to satisfy constraint: Member must not be null; "
        "Value null at 'code' failed to satisfy constraint: Member must not be null"
    )


@pytest.mark.parametrize("value", ["lots", True, [1], {"a": 1}])
def test_a_value_of_the_wrong_json_type_cannot_be_read(server, value):
    body = json.dumps({"FunctionName": "contract-type", "Role": ROLE, "Code": {"ZipFile": ""}, "MemorySize": value}).encode()
    r = signed_request(server, "POST", "/2015-03-31/functions", body)
    assert r.status_code == 400 and r.headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    assert "memorySize" in r.json()["message"]


def test_environment_limit_is_measured_on_the_variables_json(raw):
    """AWS measures the variables as the JSON it stores ({"K":"V",...}) and
    prints it: 100 variables of 8 + 30 bytes are 3,800 bytes of keys and
    values, but 4,401 bytes of JSON."""
    variables = {f"KEY{i:05d}": "v" * 30 for i in range(100)}
    measured = json.dumps(variables, separators=(",", ":"))
    assert sum(len(k) + len(v) for k, v in variables.items()) < 4096 < len(measured)
    with pytest.raises(ClientError) as exc:
        create(Environment={"Variables": variables})(raw)
    assert exc.value.response["Error"]["Code"] == P
    assert exc.value.response["Error"]["Message"] == (
        "Lambda was unable to configure your environment variables because the environment variables you have provided "
        f"exceeded the 4KB limit. String measured: {measured}"
    )


def test_a_valid_request_still_goes_through(raw, server):
    """The checks refuse nothing that is valid: unicode tags (the model's
    \\p{L} classes), an ARN as the name, the maximal values."""
    name = "contract-valid"
    try:
        conf = create(FunctionName=PREFIX + name, Timeout=900, MemorySize=10240, Tags={"équipe": "données 1", "a:b/c=d+e-f@g": ""})(raw)
        assert conf["FunctionName"] == name
    finally:
        raw.delete_function(FunctionName=name)
