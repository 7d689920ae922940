"""Resource-based policies: AddPermission's statements in AWS's JSON,
PutResourcePolicy's documents checked statement by statement, and the
questions this server asks of them: whether anyone may call a function URL
whose AuthType is NONE, and whether a service may invoke for a source.

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
from collections.abc import Iterable

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
# AWS's limit on a function's (or version's, or alias's) policy: the bytes
# of its JSON, as GetPolicy returns it.
POLICY_MAX = 20480
# The condition operators this server evaluates; a policy that uses another
# is refused when it is put, rather than kept and misread (a Deny whose
# condition nobody reads would deny nothing).
OPERATORS = ("StringEquals", "StringLike", "ArnEquals", "ArnLike", "Bool")
_STATEMENT_KEYS = ("Sid", "Effect", "Principal", "Action", "Resource", "Condition")
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
    for member, key in (
        ("SourceAccount", "AWS:SourceAccount"),
        ("FunctionUrlAuthType", "lambda:FunctionUrlAuthType"),
        ("PrincipalOrgID", "aws:PrincipalOrgID"),
        ("EventSourceToken", "lambda:EventSourceToken"),
    ):
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


def check_size(statements: Iterable[dict]) -> None:
    size = len(document(statements).encode())
    if size > POLICY_MAX:
        raise LambdaError("PolicyLengthExceededException", f"The final policy size ({size}) is bigger than the limit ({POLICY_MAX}).")


def statements_of(text: str, resource: str) -> list[dict]:
    """PutResourcePolicy's Policy: its statements, each checked as far as
    this server evaluates policies (Allow and Deny; principals, actions and
    the resource itself; the condition operators of OPERATORS). Account ids
    in principals become their root ARNs, as IAM stores them."""
    try:
        doc = msgspec.json.decode(text.encode())
    except msgspec.DecodeError:
        raise invalid("The policy is not valid JSON.") from None
    if not isinstance(doc, dict) or "Statement" not in doc:
        raise invalid("The policy must be a JSON object with a Statement.")
    if doc.get("Version", "2012-10-17") not in ("2012-10-17", "2008-10-17"):
        raise invalid(f"The policy's Version {doc['Version']!r} is not a policy language version (2012-10-17 or 2008-10-17).")
    raw = doc["Statement"]
    raw = [raw] if isinstance(raw, dict) else raw
    if not isinstance(raw, list) or not raw or not all(isinstance(s, dict) for s in raw):
        raise invalid("The policy's Statement must be a statement or a non-empty list of statements.")
    out = [_checked_statement(s, resource) for s in raw]
    sids = [s["Sid"] for s in out if "Sid" in s]
    for sid in sids:
        if sids.count(sid) > 1:
            raise invalid(f"The statement id ({sid}) is used by more than one statement of the policy.")
    return out


def _checked_statement(s: dict, resource: str) -> dict:
    for key in s:
        if key not in _STATEMENT_KEYS:
            raise invalid(f"The policy element {key} is not supported by Lambdalet; a statement holds {', '.join(_STATEMENT_KEYS)}.")
    if "Sid" in s and not (isinstance(s["Sid"], str) and re.fullmatch(r"[a-zA-Z0-9-_]*", s["Sid"])):
        raise invalid(f"The statement id {s['Sid']!r} must be letters, digits, hyphens and underscores.")
    if s.get("Effect") not in ("Allow", "Deny"):
        raise invalid(f"A statement's Effect must be Allow or Deny, not {s.get('Effect')!r}.")
    out = {k: s[k] for k in ("Sid", "Effect") if k in s}
    out["Principal"] = _checked_principal(s.get("Principal"))
    actions = s.get("Action")
    if not _names(actions) or not all(isinstance(a, str) and (a == "*" or a.lower().startswith("lambda:")) for a in _names(actions)):
        raise invalid(f"A statement's Action must name Lambda actions (lambda:InvokeFunction, lambda:*), not {actions!r}.")
    out["Action"] = actions
    if not _names(s.get("Resource")) or any(r != resource for r in _names(s.get("Resource"))):
        raise invalid(f"A statement's Resource must be the ARN of the resource the policy is for: {resource}.")
    out["Resource"] = s["Resource"]
    if "Condition" in s:
        condition = s["Condition"]
        if not isinstance(condition, dict) or not all(isinstance(v, dict) for v in condition.values()):
            raise invalid("A statement's Condition must map condition operators to keys and values.")
        for operator, pairs in condition.items():
            if operator not in OPERATORS:
                raise invalid(f"The condition operator {operator} is not supported by Lambdalet; it evaluates {', '.join(OPERATORS)}.")
            for key, value in pairs.items():
                if not all(isinstance(x, (str, bool, int)) for x in ([value] if not isinstance(value, list) else value)):
                    raise invalid(f"The value of condition key {key} must be a string or a list of strings.")
        out["Condition"] = condition
    return out


def _checked_principal(value: object) -> str | dict:
    if value == "*":
        return "*"
    if not isinstance(value, dict) or not value or any(k not in ("AWS", "Service") for k in value):
        raise invalid('A statement\'s Principal must be "*", {"AWS": ...} or {"Service": ...}.')
    out: dict = {}
    for kind, names in value.items():
        checked = [_checked_name(kind, name) for name in (names if isinstance(names, list) else [names])]
        out[kind] = checked if isinstance(names, list) else checked[0]
    return out


def _checked_name(kind: str, name: object) -> str:
    if isinstance(name, str):
        if kind == "AWS" and name == "*":
            return "*"
        if kind == "AWS" and (_ACCOUNT.match(name) or _IAM_ARN.match(name)) and isinstance(found := principal(name), dict):
            return found["AWS"]
        if kind == "Service" and _SERVICE.match(name):
            return name
    raise invalid("The provided principal was invalid. Please check the principal and try again.")


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
    # IAM compares actions without regard to case, with * and ? wildcards.
    return _arn_like(pattern.lower(), action.lower())


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
            if operator == "ArnEquals" and have not in values:
                return False
            if operator in ("ArnLike", "StringLike") and not any(_arn_like(v, have) for v in values):
                return False
            if operator not in OPERATORS:
                return False
    return True


def allows_anyone(statements: Iterable[dict], action: str, resource: str, context: dict[str, str]) -> bool:
    """Whether some statement lets anyone (an unauthenticated caller) do
    action on resource, given what the call brings to the conditions."""
    return _allows(statements, _anyone, action, resource, context)


def allows_service(
    statements: Iterable[dict], service: str, action: str, resource: str, *, source_arn: str | None, source_account: str | None
) -> bool:
    """Whether some statement lets an AWS service (s3.amazonaws.com) do
    action on resource for this source: what an event source asks."""
    context = {k: v for k, v in (("aws:sourcearn", source_arn), ("aws:sourceaccount", source_account)) if v is not None}
    return _allows(statements, lambda p: _names_service(p, service), action, resource, context)


def _allows(statements: Iterable[dict], principal_matches, action: str, resource: str, context: dict[str, str]) -> bool:
    """IAM's evaluation within one policy: allowed when some statement
    allows it and none denies it (an explicit Deny wins)."""
    allowed = False
    for s in statements:
        if not principal_matches(s.get("Principal")):
            continue
        if not any(_action_matches(a, action) for a in _names(s.get("Action"))):
            continue
        if resource not in _names(s.get("Resource")):
            continue
        if not _conditions_hold(s.get("Condition") or {}, context):
            continue
        if s.get("Effect") == "Deny":
            return False
        allowed = allowed or s.get("Effect") == "Allow"
    return allowed


def public_url_allowed(statements: Iterable[dict], resource: str) -> bool:
    """AWS's rule for a function URL with AuthType NONE."""
    statements = list(statements)
    return allows_anyone(statements, URL_INVOKE, resource, _URL_CONTEXT) and allows_anyone(statements, INVOKE, resource, _URL_CONTEXT)


def revision_mismatch(getter: str = "GetPolicy") -> LambdaError:
    return LambdaError(
        "PreconditionFailedException",
        f"The Revision Id provided does not match the latest Revision Id. Call the {getter} API to retrieve the latest Revision Id",
    )
