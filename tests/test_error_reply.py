"""A platform error becomes Lambda's wire shape in one place
(LambdaError.reply), whichever surface answers it."""

from __future__ import annotations

import json

from lambdalet.gateway.api.router import error_reply
from lambdalet.gateway.errors import LambdaError


def test_a_platform_error_is_answered_in_lambdas_shape_with_the_requests_id():
    status, headers, body = LambdaError("ResourceNotFoundException", "Function not found: x").reply("req-1")
    assert status == 404
    assert ("x-amzn-ErrorType", "ResourceNotFoundException") in headers
    assert ("x-amzn-RequestId", "req-1") in headers
    assert json.loads(body) == {"Type": "User", "Message": "Function not found: x"}


def test_without_a_request_id_a_new_one_is_given_and_the_router_says_the_same():
    exc = LambdaError("TooManyRequestsException", "Rate exceeded", Reason="ReservedFunctionConcurrentInvocationLimitExceeded")
    status, headers, body = exc.reply()
    ids = [v for k, v in headers if k == "x-amzn-RequestId"]
    assert status == 429 and len(ids) == 1 and ids[0]
    assert json.loads(body)["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert error_reply(exc, "req-2") == exc.reply("req-2")
