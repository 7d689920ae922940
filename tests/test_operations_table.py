"""Every operation in botocore's Lambda model is in README's table, and
answers as the table says: a supported one reaches its handler, any other
gets a modeled Lambda error saying Lambdalet does not support it (never a
bare 404 that reads like "not found")."""

from __future__ import annotations

import pathlib
import re

import operations_table
import pytest
from botocore.exceptions import ClientError
from helpers import signed_request

from lambdalet.gateway import lambda_model
from lambdalet.gateway.api import operations

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_lists_every_operation_with_its_state():
    text = README.read_text()
    assert operations_table.render() in text, "README's operations table is stale: paste `python tests/operations_table.py`"
    listed = re.findall(r"^\| (\w+) \| ", text[text.index(operations_table.START) : text.index(operations_table.END)], re.M)
    assert listed[1:] == sorted(lambda_model.operations())  # [0] is the header


def _sample_path(op: operations.Operation) -> str:
    path = op.path_re.pattern.removesuffix("/?$").replace("\\", "")
    for label in op.uri:
        path = re.sub(rf"\(\?P<{re.escape(label)}>[^)]*\)", "contract-nobody", path)
    query = "&".join(f"{k}={v}" for k, v in op.fixed_query)
    return path + (f"?{query}" if query else "")


@pytest.mark.parametrize("name", sorted(lambda_model.operations()))
def test_each_operation_answers_as_the_table_says(server, name):
    op = operations.by_name(name)
    r = signed_request(server, op.method, _sample_path(op), b"{}" if op.method in ("POST", "PUT") else b"")
    refusal = f"The {name} operation is not supported by Lambdalet"
    state = dict(operations_table.rows())[name]
    body = r.json() if r.content else {}
    message = body.get("message") or body.get("Message") or ""
    if state == "yes":
        assert not message.startswith(refusal), (r.status_code, body)
        assert r.headers.get("x-amzn-ErrorType") not in ("UnknownOperationException", "MethodNotAllowedException"), (r.status_code, body)
    else:
        assert (r.status_code, r.headers["x-amzn-ErrorType"]) == (400, "InvalidParameterValueException")
        assert message.startswith(refusal) and state.removeprefix("not supported by Lambdalet: ") in message


def test_boto3_sees_the_modeled_error(lam):
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as exc:
        lam.list_capacity_providers()
    assert exc.value.response["Error"]["Message"].startswith(
        "The ListCapacityProviders operation is not supported by Lambdalet: capacity providers"
    )
    with pytest.raises(ClientError) as exc:
        lam.get_durable_execution(DurableExecutionArn="arn:aws:lambda:us-east-1:000000000000:function:f/durable-execution/x/y")
    assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"
