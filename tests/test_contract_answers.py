"""Lambda's answers when something is missing, out of reach or not allowed,
worded as AWS words them (they differ from one operation to the next), and
the shapes of its configurations. Each row names the AWS behaviour it pins.
"""

from __future__ import annotations

import sys

import pytest
from botocore.exceptions import ClientError
from helpers import make_zip

ACCOUNT = "000000000000"
REGION = "us-east-1"
P = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ROLE = "arn:aws:iam::123456789012:role/r"
FN = "contract-present"  # exists, with versions 1 and 2 and an alias "live" -> 1
GONE = "contract-missing"  # never exists

NOT_FOUND = "ResourceNotFoundException"
# A function URL's FunctionName: a qualifier it carries may be neither a
# version number nor $LATEST (AWS applies the Qualifier's rule to it).
URL_NAME_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?"
    r"([a-zA-Z0-9-_]{1,64})(:((?!\d+$)[0-9a-zA-Z-_]+))?"
)
PARAM = "InvalidParameterValueException"


@pytest.fixture(scope="module")
def raw(server):
    return server.client(parameter_validation=False)


@pytest.fixture(scope="module", autouse=True)
def present(raw):
    raw.create_function(
        FunctionName=FN,
        Runtime=PY,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 1\n"})},
    )
    raw.publish_version(FunctionName=FN)
    raw.update_function_code(FunctionName=FN, ZipFile=make_zip({"app.py": "def handler(e, c):\n    return 2\n"}))
    raw.publish_version(FunctionName=FN)
    raw.create_alias(FunctionName=FN, Name="live", FunctionVersion="1")
    yield
    raw.delete_function(FunctionName=FN)


ANSWERS = [
    # -- not found, in each operation's words --------------------------------
    pytest.param(lambda l: l.get_function(FunctionName=GONE), NOT_FOUND, f"Function not found: {P}{GONE}", id="get-function-missing"),
    pytest.param(
        lambda l: l.get_function(FunctionName=GONE + ":$LATEST"),
        NOT_FOUND,
        f"Function not found: {P}{GONE}:$LATEST",
        id="get-function-names-the-latest-it-was-asked-for",
    ),
    pytest.param(
        lambda l: l.get_function(FunctionName=FN, Qualifier="1221"),
        NOT_FOUND,
        f"Function not found: {P}{FN}:1221",
        id="get-function-missing-version",
    ),
    pytest.param(
        lambda l: l.get_function_configuration(FunctionName=FN, Qualifier="nope"),
        NOT_FOUND,
        f"Function not found: {P}{FN}:nope",
        id="get-configuration-missing-alias",
    ),
    pytest.param(
        lambda l: l.delete_function(FunctionName=GONE, Qualifier="1"),
        NOT_FOUND,
        f"Function not found: {P}{GONE}",
        id="delete-names-the-function-not-the-qualifier",
    ),
    pytest.param(
        lambda l: l.get_function_concurrency(FunctionName=GONE), NOT_FOUND, f"Function not found: {P}{GONE}", id="get-concurrency-missing"
    ),
    pytest.param(
        lambda l: l.put_function_concurrency(FunctionName=GONE, ReservedConcurrentExecutions=1),
        NOT_FOUND,
        f"Function not found: {P}{GONE}:$LATEST",
        id="put-concurrency-adds-latest",
    ),
    pytest.param(
        lambda l: l.get_function_event_invoke_config(FunctionName=GONE),
        NOT_FOUND,
        f"The function {P}{GONE}:$LATEST doesn't have an EventInvokeConfig",
        id="event-config-get-names-latest",
    ),
    pytest.param(
        lambda l: l.get_function_event_invoke_config(FunctionName=FN, Qualifier="1221"),
        NOT_FOUND,
        f"The function {P}{FN}:1221 doesn't have an EventInvokeConfig",
        id="event-config-get-names-the-version",
    ),
    pytest.param(
        lambda l: l.delete_function_event_invoke_config(FunctionName=GONE),
        NOT_FOUND,
        f"The function {P}{GONE}:$LATEST doesn't have an EventInvokeConfig",
        id="event-config-delete-missing",
    ),
    pytest.param(
        lambda l: l.put_function_event_invoke_config(FunctionName=GONE, MaximumRetryAttempts=1),
        NOT_FOUND,
        "The function doesn't exist.",
        id="event-config-put-missing-function",
    ),
    pytest.param(
        lambda l: l.put_function_event_invoke_config(FunctionName=FN, Qualifier="nope", MaximumRetryAttempts=1),
        NOT_FOUND,
        "The function doesn't exist.",
        id="event-config-put-missing-alias",
    ),
    pytest.param(
        lambda l: l.update_function_event_invoke_config(FunctionName=GONE, MaximumRetryAttempts=1),
        NOT_FOUND,
        "The function doesn't exist.",
        id="event-config-update-missing-function",
    ),
    pytest.param(
        lambda l: l.update_function_event_invoke_config(FunctionName=FN, MaximumRetryAttempts=1),
        NOT_FOUND,
        f"The function {P}{FN}:$LATEST doesn't have an EventInvokeConfig",
        id="event-config-update-missing-config",
    ),
    pytest.param(
        lambda l: l.list_function_event_invoke_configs(FunctionName=GONE),
        NOT_FOUND,
        "The function doesn't exist.",
        id="event-config-list-missing",
    ),
    pytest.param(
        lambda l: l.get_function_url_config(FunctionName=GONE),
        NOT_FOUND,
        "The resource you requested does not exist.",
        id="url-get-missing",
    ),
    pytest.param(
        lambda l: l.get_function_url_config(FunctionName=FN),
        NOT_FOUND,
        "The resource you requested does not exist.",
        id="url-get-no-config",
    ),
    pytest.param(
        lambda l: l.delete_function_url_config(FunctionName=GONE),
        NOT_FOUND,
        "The resource you requested does not exist.",
        id="url-delete-missing",
    ),
    pytest.param(
        lambda l: l.create_function_url_config(FunctionName=GONE, AuthType="NONE"),
        NOT_FOUND,
        "Function does not exist",
        id="url-create-missing-function",
    ),
    pytest.param(
        lambda l: l.create_function_url_config(FunctionName=FN, Qualifier="nope", AuthType="NONE"),
        NOT_FOUND,
        "Function does not exist",
        id="url-create-missing-alias",
    ),
    pytest.param(
        lambda l: l.update_function_url_config(FunctionName=GONE, AuthType="NONE"),
        NOT_FOUND,
        "Function does not exist",
        id="url-update-missing-function",
    ),
    pytest.param(
        lambda l: l.update_function_url_config(FunctionName=FN, AuthType="NONE"),
        NOT_FOUND,
        "The resource you requested does not exist.",
        id="url-update-no-config",
    ),
    pytest.param(lambda l: l.list_function_url_configs(FunctionName=GONE), NOT_FOUND, "Function does not exist", id="url-list-missing"),
    pytest.param(
        lambda l: l.get_alias(FunctionName=FN, Name="non-existent"),
        NOT_FOUND,
        f"Cannot find alias arn: {P}{FN}:non-existent",
        id="get-alias-missing",
    ),
    pytest.param(
        lambda l: l.update_alias(FunctionName=FN, Name="non-existent"),
        NOT_FOUND,
        f"Alias not found: {P}{FN}:non-existent",
        id="update-alias-missing",
    ),
    pytest.param(
        lambda l: l.create_alias(FunctionName=GONE, Name="custom", FunctionVersion="1"),
        NOT_FOUND,
        f"Function not found: {P}{GONE}:1",
        id="create-alias-missing-function-names-the-version",
    ),
    pytest.param(
        lambda l: l.create_alias(FunctionName=FN, Name="custom", FunctionVersion="10"),
        NOT_FOUND,
        f"Function not found: {P}{FN}:10",
        id="create-alias-missing-version",
    ),
    pytest.param(
        lambda l: l.create_alias(
            FunctionName=FN, Name="custom", FunctionVersion="1", RoutingConfig={"AdditionalVersionWeights": {"10": 0.5}}
        ),
        NOT_FOUND,
        f"Function not found: {P}{FN}:10",
        id="create-alias-missing-weighted-version",
    ),
    pytest.param(
        lambda l: l.get_provisioned_concurrency_config(FunctionName=FN, Qualifier="noalias"),
        NOT_FOUND,
        f"Cannot find alias arn: {P}{FN}:noalias",
        id="provisioned-missing-alias",
    ),
    pytest.param(
        lambda l: l.get_provisioned_concurrency_config(FunctionName=GONE, Qualifier="noalias"),
        NOT_FOUND,
        f"Cannot find alias arn: {P}{GONE}:noalias",
        id="provisioned-missing-function-with-alias",
    ),
    pytest.param(
        lambda l: l.delete_provisioned_concurrency_config(FunctionName=GONE, Qualifier="1"),
        NOT_FOUND,
        f"Function not found: {P}{GONE}:1",
        id="provisioned-missing-function-with-version",
    ),
    pytest.param(
        lambda l: l.put_provisioned_concurrency_config(FunctionName=FN, Qualifier="10", ProvisionedConcurrentExecutions=1),
        NOT_FOUND,
        f"Function not found: {P}{FN}:10",
        id="provisioned-missing-version",
    ),
    pytest.param(
        lambda l: l.get_provisioned_concurrency_config(FunctionName=FN, Qualifier="1"),
        "ProvisionedConcurrencyConfigNotFoundException",
        "No Provisioned Concurrency Config found for this function",
        id="provisioned-no-config",
    ),
    pytest.param(
        lambda l: l.list_provisioned_concurrency_configs(FunctionName=GONE),
        NOT_FOUND,
        f"Function not found: {P}{GONE}",
        id="provisioned-list-missing",
    ),
    pytest.param(lambda l: l.list_tags(Resource=P + GONE), NOT_FOUND, f"Function not found: {P}{GONE}", id="tags-missing"),
    pytest.param(
        lambda l: l.list_versions_by_function(FunctionName=GONE), NOT_FOUND, f"Function not found: {P}{GONE}", id="versions-missing"
    ),
    # -- semantic refusals ------------------------------------------------------
    pytest.param(
        lambda l: l.get_function(FunctionName=P + FN + ":1", Qualifier="2"),
        PARAM,
        "The derived qualifier from the function name does not match the specified qualifier.",
        id="derived-qualifier-mismatch",
    ),
    pytest.param(
        lambda l: l.create_function_url_config(FunctionName=P + FN + ":live", Qualifier="other", AuthType="NONE"),
        PARAM,
        "The derived qualifier from the function name does not match the specified qualifier.",
        id="url-derived-qualifier-mismatch",
    ),
    pytest.param(
        lambda l: l.get_function_url_config(FunctionName=FN + ":1"),
        "ValidationException",
        f"1 validation error detected: Value '{FN}:1' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: "
        + URL_NAME_PATTERN,
        id="url-derived-qualifier-cannot-be-a-version",
    ),
    pytest.param(
        lambda l: l.get_function_url_config(FunctionName=FN + ":$LATEST"),
        "ValidationException",
        f"1 validation error detected: Value '{FN}:$LATEST' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: "
        + URL_NAME_PATTERN,
        id="url-derived-qualifier-cannot-be-latest",
    ),
    pytest.param(
        lambda l: l.delete_function(FunctionName=FN, Qualifier="$LATEST"),
        PARAM,
        "$LATEST version cannot be deleted without deleting the function.",
        id="latest-cannot-be-deleted",
    ),
    pytest.param(
        lambda l: l.put_function_concurrency(FunctionName=FN + ":1", ReservedConcurrentExecutions=1),
        PARAM,
        "This operation is permitted on Lambda functions only. Aliases and versions do not support this operation. Please specify either a function name or an unqualified function ARN.",
        id="reserved-concurrency-on-a-qualified-arn",
    ),
    pytest.param(
        lambda l: l.tag_resource(Resource=P + FN + ":1", Tags={"a": "b"}),
        PARAM,
        "Tags on function aliases and versions are not supported. Please specify a function ARN.",
        id="tags-on-a-version",
    ),
    pytest.param(
        lambda l: l.tag_resource(Resource=P + FN, Tags={}), PARAM, "An error occurred and the request cannot be processed.", id="tags-empty"
    ),
    pytest.param(
        lambda l: l.tag_resource(Resource=P + FN, Tags={f"k{i}": "v" for i in range(51)}),
        PARAM,
        "Number of tags exceeds resource tag limit.",
        id="tags-at-most-50",
    ),
    pytest.param(
        lambda l: l.put_function_event_invoke_config(FunctionName=FN),
        PARAM,
        "You must specify at least one of error handling or destination setting.",
        id="event-config-with-no-settings",
    ),
    pytest.param(
        lambda l: l.put_function_event_invoke_config(FunctionName=FN, DestinationConfig={"OnSuccess": {"Destination": P + FN}}),
        PARAM,
        "You can't specify the function as a destination for itself.",
        id="a-function-as-its-own-destination",
    ),
    pytest.param(
        lambda l: l.put_function_event_invoke_config(FunctionName=FN, DestinationConfig={"OnSuccess": {"Destination": P + "doesnotexist"}}),
        PARAM,
        f"The destination ARN {P}doesnotexist is invalid.",
        id="destination-function-missing",
    ),
    pytest.param(
        lambda l: l.put_function_event_invoke_config(
            FunctionName=FN, DestinationConfig={"OnSuccess": {"Destination": f"arn:aws:iam:{REGION}:{ACCOUNT}:function:{FN}"}}
        ),
        PARAM,
        f"The provided destination config DestinationConfig(onSuccess=OnSuccess(destination=arn:aws:iam:{REGION}:{ACCOUNT}:function:{FN}), onFailure=null) is invalid.",
        id="destination-of-a-service-aws-never-delivers-to",
    ),
    pytest.param(
        lambda l: l.put_provisioned_concurrency_config(FunctionName=FN, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1),
        PARAM,
        "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
        id="provisioned-put-on-latest",
    ),
    pytest.param(
        lambda l: l.get_provisioned_concurrency_config(FunctionName=FN, Qualifier="$LATEST"),
        PARAM,
        "The function resource provided must be an alias or a published version.",
        id="provisioned-get-on-latest",
    ),
    pytest.param(
        lambda l: l.create_alias(
            FunctionName=FN, Name="custom", FunctionVersion="1", RoutingConfig={"AdditionalVersionWeights": {"1": 0.8, "2": 0.2}}
        ),
        PARAM,
        "Number of items in AdditionalVersionWeights cannot be greater than 1",
        id="alias-routes-to-one-more-version-only",
    ),
    pytest.param(
        lambda l: l.create_alias(
            FunctionName=FN, Name="custom", FunctionVersion="1", RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}}
        ),
        PARAM,
        "Invalid function version 1. Function version 1 is already included in routing configuration.",
        id="alias-routes-to-its-own-version",
    ),
    pytest.param(
        lambda l: l.create_alias(
            FunctionName=FN, Name="custom", FunctionVersion="$LATEST", RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}}
        ),
        PARAM,
        "$LATEST is not supported for an alias pointing to more than 1 version",
        id="alias-on-latest-cannot-route",
    ),
    pytest.param(
        lambda l: l.create_alias(FunctionName=FN, Name="live", FunctionVersion="1"),
        "ResourceConflictException",
        f"Alias already exists: {P}{FN}:live",
        id="alias-exists",
    ),
]


@pytest.mark.parametrize("call,code,message", ANSWERS)
def test_answers(raw, call, code, message):
    with pytest.raises(ClientError) as exc:
        call(raw)
    assert (exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]) == (code, message)


OTHER_REGION = f"arn:aws:lambda:eu-central-1:{ACCOUNT}:function:{FN}"
OTHER_ACCOUNT = f"arn:aws:lambda:{REGION}:123456789012:function:{FN}"
SCOPED = [
    pytest.param(lambda l, arn: l.get_function(FunctionName=arn), id="get-function"),
    pytest.param(lambda l, arn: l.get_function_configuration(FunctionName=arn), id="get-function-configuration"),
    pytest.param(lambda l, arn: l.delete_function(FunctionName=arn), id="delete-function"),
    pytest.param(lambda l, arn: l.invoke(FunctionName=arn), id="invoke"),
    pytest.param(lambda l, arn: l.get_function_concurrency(FunctionName=arn), id="get-function-concurrency"),
    pytest.param(lambda l, arn: l.get_function_url_config(FunctionName=arn), id="get-function-url-config"),
    pytest.param(lambda l, arn: l.get_function_event_invoke_config(FunctionName=arn), id="get-function-event-invoke-config"),
    pytest.param(lambda l, arn: l.list_aliases(FunctionName=arn), id="list-aliases"),
    pytest.param(
        lambda l, arn: l.create_function(
            FunctionName=arn, Runtime=PY, Role=ROLE, Handler="app.handler", Code={"ZipFile": make_zip({"a.py": ""})}
        ),
        id="create-function",
    ),
]


@pytest.mark.parametrize("call", SCOPED)
def test_another_regions_function_is_not_reachable(raw, call):
    """AWS: 404 "Functions from '<region>' are not reachable in this region
    ('<region>')" for an ARN of another region, whichever operation."""
    with pytest.raises(ClientError) as exc:
        call(raw, OTHER_REGION)
    resp = exc.value.response
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert (resp["Error"]["Code"], resp["Error"]["Message"]) == (
        NOT_FOUND,
        f"Functions from 'eu-central-1' are not reachable in this region ('{REGION}')",
    )


@pytest.mark.parametrize("call", SCOPED)
def test_another_accounts_function_is_access_denied(raw, call):
    """AWS: 403 AccessDeniedException for another account's function (its
    resource policy grants this caller nothing)."""
    with pytest.raises(ClientError) as exc:
        call(raw, OTHER_ACCOUNT)
    resp = exc.value.response
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert resp["Error"]["Code"] == "AccessDeniedException"
    assert "123456789012" in resp["Error"]["Message"]
    # Nothing was done to this server's function of the same name.
    assert raw.get_function(FunctionName=FN)["Configuration"]["FunctionName"] == FN


def test_this_regions_and_accounts_arn_reaches_the_function(raw):
    assert raw.get_function(FunctionName=P + FN)["Configuration"]["FunctionName"] == FN
    assert raw.get_function(FunctionName=f"{ACCOUNT}:function:{FN}")["Configuration"]["FunctionName"] == FN


MANAGED = (
    "capacity providers and managed-instance scaling place functions on a fleet of EC2 instances; on one host there is no fleet to manage"
)
SETTINGS = [
    pytest.param(
        "CapacityProviderConfig",
        {
            "LambdaManagedInstancesCapacityProviderConfig": {
                "CapacityProviderArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:capacity-provider:cp"
            }
        },
        MANAGED,
        id="capacity-provider",
    ),
    pytest.param("DurableConfig", {"RetentionPeriodInDays": 7}, "durable functions checkpoint and replay their steps", id="durable"),
    pytest.param(
        "TenancyConfig",
        {"TenantIsolationMode": "PER_TENANT"},
        "tenant isolation gives each tenant id execution environments of its own",
        id="tenancy",
    ),
    pytest.param(
        "RuntimeConfig",
        {"RuntimeArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:runtime/my-runtime-0123456789", "RuntimeAlias": "live"},
        "customer-managed runtimes",
        id="customer-managed-runtime",
    ),
    pytest.param("AcceleratorConfig", {"AcceleratorMemorySize": 16}, "no accelerator devices", id="accelerator"),
    pytest.param("PublishTo", "LATEST_PUBLISHED", MANAGED, id="publish-to-latest-published"),
]


@pytest.mark.parametrize("member,value,why", SETTINGS)
def test_settings_of_what_lambdalet_does_not_run_are_refused_not_dropped(raw, member, value, why):
    """AWS accepts these settings; a server that accepted and ignored them
    would run a function without what it asked for (isolation, a fleet,
    durability). Lambdalet refuses each with InvalidParameterValueException
    naming the setting and why, as it answers the operations it does not
    perform, and nothing is created or changed."""
    prefix = f"{member} is not supported by Lambdalet: "
    create = dict(FunctionName=GONE, Runtime=PY, Role=ROLE, Handler="app.handler", Code={"ZipFile": make_zip({"app.py": ""})})
    with pytest.raises(ClientError) as exc:
        raw.create_function(**create, **{member: value})
    code, message = exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]
    assert code == PARAM and message.startswith(prefix) and why in message, message
    with pytest.raises(ClientError) as exc:
        raw.get_function(FunctionName=GONE)
    assert exc.value.response["Error"]["Code"] == NOT_FOUND
    if member in ("TenancyConfig",):
        return  # not a member of UpdateFunctionConfiguration: it cannot change after creation
    before = raw.get_function_configuration(FunctionName=FN)["RevisionId"]
    change = raw.publish_version if member == "PublishTo" else raw.update_function_configuration
    with pytest.raises(ClientError) as exc:
        change(FunctionName=FN, **{member: value})
    assert (exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]) == (code, message)
    assert raw.get_function_configuration(FunctionName=FN)["RevisionId"] == before
