"""The function settings this server cannot honour, refused rather than
dropped: a function that silently ran without its VPC, its file system or
its tenant isolation would be worse than an error. Each refusal is
InvalidParameterValueException naming the setting and why.

The reasons shared with operations that mean nothing here (capacity
providers, durable executions) live here too, so api/unsupported.py and
these refusals say the same.
"""

from __future__ import annotations

from ..errors import invalid

MANAGED_INSTANCES = (
    "capacity providers and managed-instance scaling place functions on a fleet of EC2 instances; on one host there is no fleet to manage"
)
DURABLE = (
    "durable functions checkpoint and replay their steps through a durable-execution service (checkpoints, waits, "
    "callbacks, execution history) that Lambdalet does not run, so no function here is durable"
)

# Settings of CreateFunction and UpdateFunctionConfiguration (and
# PublishVersion's PublishTo) that only make sense with what this server
# does not run: any value is refused.
_NEVER = {
    "CapacityProviderConfig": MANAGED_INSTANCES,
    "PublishTo": "LATEST_PUBLISHED publishes $LATEST.PUBLISHED, the version functions on capacity providers run; " + MANAGED_INSTANCES,
    "DurableConfig": DURABLE,
    "TenancyConfig": (
        "tenant isolation gives each tenant id execution environments of its own, and Lambdalet's pool does not keep "
        "environments apart by tenant, so such a function would run without the isolation it asks for"
    ),
    "RuntimeConfig": (
        "customer-managed runtimes (RuntimeArn, RuntimeAlias) are runtime resources hosted by AWS; here a runtime is "
        "one of `lambdalet runtimes ls`, or provided.al2023 with a bootstrap of your own"
    ),
    "AcceleratorConfig": "sandboxes on this host are given no accelerator devices",
}


def refuse(body: dict) -> None:
    for key, why in _NEVER.items():
        if body.get(key) is not None:
            raise invalid(f"{key} is not supported by Lambdalet: {why}.")
    messages = {
        "FileSystemConfigs": "FileSystemConfigs (EFS) are not supported by this server.",
        "ImageConfig": "Container images are not supported by this server; deploy a .zip package.",
        "SnapStart": "SnapStart (resuming from a snapshot of an initialized execution environment) is not supported by this server.",
    }
    for key, message in messages.items():
        value = body.get(key)
        if value and not (key == "SnapStart" and value == {"ApplyOn": "None"}):
            raise invalid(message)
    vpc = body.get("VpcConfig") or {}
    if vpc.get("SubnetIds") or vpc.get("SecurityGroupIds"):
        raise invalid("VpcConfig is not supported by this server; sandboxes have their own network namespace.")
    dlq = body.get("DeadLetterConfig") or {}
    if dlq.get("TargetArn"):
        raise invalid("DeadLetterConfig targets (SQS/SNS) are not reachable from this server; use an OnFailure destination instead.")
