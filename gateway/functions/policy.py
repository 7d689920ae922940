"""Resource-based policies: AddPermission's statements in AWS's JSON, and
the one question this server asks of them, whether anyone may call a
function URL whose AuthType is NONE.

Pure: statements in, statements (or a yes/no) out. permissions.py keeps
them with the functions.

What AWS writes for each AddPermission parameter (learned from its answers):
    Principal "*"                 -> "Principal": "*"
    Principal "s3.amazonaws.com"  -> "Principal": {"Service": "s3.amazonaws.com"}
    Principal "123456789012"      -> "Principal": {"AWS": "arn:aws:iam::123456789012:root"}
    Principal an IAM ARN          -> "Principal": {"AWS": <the ARN>}
    SourceAccount, FunctionUrlAuthType, PrincipalOrgID, EventSourceToken
                                  -> "StringEquals": {"AWS:SourceAccount", "lambda:FunctionUrlAuthType",
                                                      "aws:PrincipalOrgID", "lambda:EventSourceToken"}
    SourceArn                     -> "ArnLike": {"AWS:SourceArn": ...}
    InvokedViaFunctionUrl true    -> "Bool": {"lambda:InvokedViaFunctionUrl": "true"}

Function URLs with AuthType NONE follow AWS's rule since October 2025:
the function's (or alias's) policy must let everyone ("*") both
lambda:InvokeFunctionUrl and lambda:InvokeFunction; otherwise the URL
answers 403. A statement whose condition needs a key an anonymous HTTP
caller does not bring (a source account, an organization) grants nothing.
"""
from __future__ import annotations

import re
from typing import Iterable

import msgspec

from ..errors import LambdaError, invalid

_ACCOUNT = re.compile(r"^\d{12}$")
_IAM_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:iam::\d{12}:(root|(user|role|assumed-role|federated-user)/.+)$")
# Service principals are domain names of AWS's: s3.amazonaws.com,
# alexa-appkit.amazon.com, ...
_SERVICE = re.compile(r"^[a-z0-9][a-z0-9.-]*\.(amazonaws\.com|amazon\.com)$")

URL_INVOKE = "lambda:InvokeFunctionUrl"
INVOKE = "lambda:InvokeFunction"
# What the AWS console adds to a function's policy when it makes a URL with
# AuthType NONE (AddPermission's parameters); the lambdalet CLI and console
# add the same.
PUBLIC_URL_STATEMENTS = (
    {"StatementId": "FunctionURLAllowPublicAccess", "Action": URL_INVOKE, "Principal": "*", "FunctionUrlAuthType": "NONE"},
    {"StatementId": "FunctionURLAllowInvokeAction", "Action": INVOKE, "Principal": "*", "InvokedViaFunctionUrl": True},
)
# What an anonymous call to a function URL brings to the conditions.
_URL_CONTEXT = {"lambda:functionurlauthtype": "NONE", "lambda:invokedviafunctionurl": "true"}


def principal(value: str) -> str | dict:
    if value == "*":
        return "*"
    if _ACCOUNT.match(value):
        return {"AWS": f"arn:aws:iam::{value}:root"}
    if _IAM_ARN.match(value):
        return {"AWS": value}
    if _SERVICE.match(value):
        return {"Service": value}
    raise invalid("The provided principal was invalid. Please check the principal and try again.")


def statement(body: dict, resource: str) -> dict:
    """AddPermission's statement, from its (model-checked) request."""
    action = body["Action"]
    if body.get("FunctionUrlAuthType") is not None and action != URL_INVOKE:
        raise invalid("FunctionUrlAuthType is only supported for lambda:InvokeFunctionUrl action")
    if body.get("InvokedViaFunctionUrl") and action != INVOKE:
        raise invalid("InvokedViaFunctionUrl is only supported for lambda:InvokeFunction action")
    doc: dict = {
        "Sid": body["StatementId"],
        "Effect": "Allow",
        "Principal": principal(body["Principal"]),
        "Action": action,
        "Resource": resource,
    }
    equals = {}
    for member, key in (("SourceAccount", "AWS:SourceAccount"), ("FunctionUrlAuthType", "lambda:FunctionUrlAuthType"),
                        ("PrincipalOrgID", "aws:PrincipalOrgID"), ("EventSourceToken", "lambda:EventSourceToken")):
        if body.get(member) is not None:
            equals[key] = body[member]
    condition: dict = {}
    if equals:
        condition["StringEquals"] = equals
    if body.get("SourceArn") is not None:
        condition["ArnLike"] = {"AWS:SourceArn": body["SourceArn"]}
    if body.get("InvokedViaFunctionUrl"):
        condition["Bool"] = {"lambda:InvokedViaFunctionUrl": "true"}
    if condition:
        doc["Condition"] = condition
    return doc


def document(statements: Iterable[dict]) -> str:
    """GetPolicy's Policy: the policy as JSON text, as AWS returns it."""
    return msgspec.json.encode({"Version": "2012-10-17", "Id": "default", "Statement": list(statements)}).decode()


def encoded(doc: dict) -> str:
    return msgspec.json.encode(doc).decode()


def _anyone(value: object) -> bool:
    if value == "*":
        return True
    if isinstance(value, dict):
        aws = value.get("AWS")
        return aws == "*" or (isinstance(aws, list) and "*" in aws)
    return False


def _names_service(value: object, service: str) -> bool:
    return _anyone(value) or (isinstance(value, dict) and service in _names(value.get("Service")))


def _arn_like(pattern: str, value: str) -> bool:
    """IAM's ArnLike: * and ? wildcards, compared part by part (':')."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.DOTALL) is not None


def _names(value: object) -> list[str]:
    return [value] if isinstance(value, str) else list(value) if isinstance(value, list) else []


def _action_matches(pattern: str, action: str) -> bool:
    pattern, action = pattern.lower(), action.lower()
    return pattern in ("*", "lambda:*") or pattern == action


def _conditions_hold(condition: dict, context: dict[str, str]) -> bool:
    for operator, pairs in condition.items():
        for key, wanted in pairs.items():
            have = context.get(key.lower())
            if have is None:
                return False  # a key the caller does not bring: IAM says no
            values = [str(w) for w in _names(wanted)] or [str(wanted)]
            if operator == "StringEquals" and have not in values:
                return False
            if operator == "Bool" and have.lower() not in [v.lower() for v in values]:
                return False
            if operator in ("ArnLike", "StringLike") and not any(_arn_like(v, have) for v in values):
                return False
            if operator not in ("StringEquals", "Bool", "ArnLike", "StringLike"):
                return False
    return True


def allows_anyone(statements: Iterable[dict], action: str, resource: str, context: dict[str, str]) -> bool:
    """Whether some statement lets anyone (an unauthenticated caller) do
    action on resource, given what the call brings to the conditions."""
    return _allows(statements, _anyone, action, resource, context)


def allows_service(statements: Iterable[dict], service: str, action: str, resource: str, *,
                   source_arn: str | None, source_account: str | None) -> bool:
    """Whether some statement lets an AWS service (s3.amazonaws.com) do
    action on resource for this source: what an event source asks."""
    context = {k: v for k, v in (("aws:sourcearn", source_arn), ("aws:sourceaccount", source_account)) if v is not None}
    return _allows(statements, lambda p: _names_service(p, service), action, resource, context)


def _allows(statements: Iterable[dict], principal_matches, action: str, resource: str, context: dict[str, str]) -> bool:
    for s in statements:
        if s.get("Effect") != "Allow" or not principal_matches(s.get("Principal")):
            continue
        if not any(_action_matches(a, action) for a in _names(s.get("Action"))):
            continue
        if resource not in _names(s.get("Resource")):
            continue
        if _conditions_hold(s.get("Condition") or {}, context):
            return True
    return False


def public_url_allowed(statements: Iterable[dict], resource: str) -> bool:
    """AWS's rule for a function URL with AuthType NONE."""
    statements = list(statements)
    return (allows_anyone(statements, URL_INVOKE, resource, _URL_CONTEXT)
            and allows_anyone(statements, INVOKE, resource, _URL_CONTEXT))


def revision_mismatch() -> LambdaError:
    return LambdaError("PreconditionFailedException",
                       "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API to retrieve the latest Revision Id")
