"""The Lambda operations this server does not perform, and why.

Each answers 400 InvalidParameterValueException (an error every one of
these operations declares in Lambda's model, so every SDK raises its typed
exception) with a message saying the operation is not supported by
Lambdalet and why, never a bare 404 that reads like "not found". README's
operations table is checked against this table and the routes
(tests/test_operations_table.py), so neither can drift.
"""

from __future__ import annotations

from ..errors import LambdaError
from ..functions.unsupported_settings import DURABLE as _DURABLE
from ..functions.unsupported_settings import MANAGED_INSTANCES as _MANAGED_INSTANCES

REASONS: dict[str, str] = {
    "CreateCapacityProvider": _MANAGED_INSTANCES,
    "DeleteCapacityProvider": _MANAGED_INSTANCES,
    "GetCapacityProvider": _MANAGED_INSTANCES,
    "ListCapacityProviders": _MANAGED_INSTANCES,
    "UpdateCapacityProvider": _MANAGED_INSTANCES,
    "ListFunctionVersionsByCapacityProvider": _MANAGED_INSTANCES,
    "GetFunctionScalingConfig": _MANAGED_INSTANCES,
    "PutFunctionScalingConfig": _MANAGED_INSTANCES,
    "CheckpointDurableExecution": _DURABLE,
    "DeleteDurableExecution": _DURABLE,
    "GetDurableExecution": _DURABLE,
    "GetDurableExecutionHistory": _DURABLE,
    "GetDurableExecutionState": _DURABLE,
    "ListDurableExecutionsByFunction": _DURABLE,
    "PauseDurableExecution": _DURABLE,
    "ResumeDurableExecution": _DURABLE,
    "StopDurableExecution": _DURABLE,
    "SendDurableExecutionCallbackFailure": _DURABLE,
    "SendDurableExecutionCallbackHeartbeat": _DURABLE,
    "SendDurableExecutionCallbackSuccess": _DURABLE,
}


def refusal(operation: str) -> LambdaError:
    reason = REASONS.get(operation, "it is not built yet")
    return LambdaError("InvalidParameterValueException", f"The {operation} operation is not supported by Lambdalet: {reason}.")
