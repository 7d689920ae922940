"""Whether a function's resource policy lets an AWS service invoke it, on
statements shaped as AddPermission writes them."""

from __future__ import annotations

import pytest

from lambdalet.gateway.events.policy import StatementPolicy

ARN = "arn:aws:lambda:us-east-1:000000000000:function:f"


def _stmt(principal="s3.amazonaws.com", action="lambda:InvokeFunction", resource=ARN, condition=None):
    s = {
        "Sid": "s",
        "Effect": "Allow",
        "Principal": {"Service": principal} if principal != "*" else "*",
        "Action": action,
        "Resource": resource,
    }
    if condition is not None:
        s["Condition"] = condition
    return s


def _allows(statements, source_arn="arn:aws:s3:::bkt", account="000000000000", resource=ARN):
    return StatementPolicy(lambda f, q: (statements, resource)).allows(
        "f", "$LATEST", principal="s3.amazonaws.com", action="lambda:InvokeFunction", source_arn=source_arn, source_account=account
    )


@pytest.mark.parametrize(
    "statements,expected",
    [
        ([], False),
        ([_stmt()], True),
        ([_stmt(principal="sns.amazonaws.com")], False),
        ([_stmt(principal="*")], True),
        ([_stmt(action="lambda:GetFunction")], False),
        ([_stmt(action="lambda:*")], True),
        ([_stmt(resource=ARN + ":prod")], False),
        ([_stmt(condition={"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::bkt"}})], True),
        ([_stmt(condition={"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::other"}})], False),
        ([_stmt(condition={"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::b*"}})], True),
        ([_stmt(condition={"ArnLike": {"AWS:SourceArn": "arn:aws:s3:::b[k]t"}})], False),
        ([_stmt(condition={"StringEquals": {"AWS:SourceAccount": "000000000000"}})], True),
        ([_stmt(condition={"StringEquals": {"AWS:SourceAccount": "111111111111"}})], False),
        ([_stmt(condition={"StringEquals": {"aws:PrincipalOrgID": "o-123"}})], False),
        ([_stmt(condition={"NumericLessThan": {"aws:x": "1"}})], False),
        ([dict(_stmt(), Effect="Deny")], False),
    ],
)
def test_service_principal_statements(statements, expected):
    assert _allows(statements) is expected
