"""A layer version's resource policy (AddLayerVersionPermission,
GetLayerVersionPolicy) in AWS's shapes: a statement made from a request,
checked as Lambda checks it, the policy document's text and its limit,
and the revision a change must name. Pure; refusals are LambdaError."""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from ..errors import LambdaError, invalid
from .layer_input import pattern_error
from .layer_records import LayerVersionRecord

STATEMENT_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,100}$")
PRINCIPAL_RE = re.compile(r"^(?:\d{12}|\*|arn:aws[a-zA-Z-]*:iam::\d{12}:root)$")
ORGANIZATION_RE = re.compile(r"^o-[a-z0-9]{10,32}$")
POLICY_MAX_BYTES = 20_480  # AWS's limit on a resource policy's size


class PermissionRequest(NamedTuple):
    sid: str
    action: str
    principal: str
    organization: str | None


def permission_request(body: dict) -> PermissionRequest:
    """An AddLayerVersionPermission body, checked before the version is
    looked up (as Lambda checks it)."""
    sid = body.get("StatementId")
    if not isinstance(sid, str) or not STATEMENT_ID_RE.match(sid):
        raise pattern_error(sid, "statementId", "([a-zA-Z0-9-_]+)")
    action = body.get("Action")
    if action != "lambda:GetLayerVersion":
        raise pattern_error(action, "action", "lambda:GetLayerVersion")
    principal = body.get("Principal")
    if not isinstance(principal, str) or not PRINCIPAL_RE.match(principal):
        raise pattern_error(principal, "principal", r"\d{12}|\*|arn:(aws[a-zA-Z-]*):iam::\d{12}:root")
    organization = body.get("OrganizationId")
    if organization is not None and (not isinstance(organization, str) or not ORGANIZATION_RE.match(organization)):
        raise pattern_error(organization, "organizationId", "o-[a-z0-9]{10,32}")
    if organization is not None and principal != "*":
        raise invalid("OrganizationId can only be set when the Principal is '*'.")
    return PermissionRequest(sid, action, principal, organization)


def grant(req: PermissionRequest, resource: str) -> dict:
    """The statement a request grants on the version ``resource`` (its ARN)."""
    sid, action, principal, organization = req
    statement: dict = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": "*" if principal == "*" else {"AWS": principal if principal.startswith("arn:") else f"arn:aws:iam::{principal}:root"},
        "Action": action,
        "Resource": resource,
    }
    if organization is not None:
        statement["Condition"] = {"StringEquals": {"aws:PrincipalOrgID": organization}}
    return statement


def with_statement(statements: list[dict], statement: dict) -> list[dict]:
    """The policy's statements with one more: its Sid new, the document
    within AWS's size limit."""
    sid = statement["Sid"]
    if any(s["Sid"] == sid for s in statements):
        raise LambdaError(
            "ResourceConflictException",
            f"The statement id ({sid}) provided already exists. Please provide a new statement id, or remove the existing statement.",
        )
    out = [*statements, statement]
    if len(policy_text(out)) > POLICY_MAX_BYTES:
        raise LambdaError("PolicyLengthExceededException", "The final policy size is bigger than the limit.")
    return out


def without_statement(statements: list[dict], sid: str) -> list[dict]:
    if not any(s["Sid"] == sid for s in statements):
        raise LambdaError("ResourceNotFoundException", f"Statement {sid} is not found in resource policy.")
    return [s for s in statements if s["Sid"] != sid]


def policy_text(statements: list[dict]) -> str:
    return json.dumps({"Version": "2012-10-17", "Id": "default", "Statement": statements}, separators=(",", ":"))


def statement_text(statement: dict) -> str:
    return json.dumps(statement, separators=(",", ":"))


def check_revision(rec: LayerVersionRecord, revision_id: str | None) -> None:
    if revision_id is not None and revision_id != rec.policy_revision:
        raise LambdaError(
            "PreconditionFailedException",
            "The RevisionId provided does not match the latest RevisionId for the Lambda function. "
            "Call the GetLayerVersionPolicy API to retrieve the latest RevisionId for your resource.",
        )
