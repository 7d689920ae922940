"""Get/PutFunctionRecursionConfig and Get/PutRuntimeManagementConfig.

Recursion: Terminate (the default) stops a chain of asynchronous
destinations that loops back after 16 calls, as AWS's recursive-loop
detection does; Allow lets the function be called on by such a chain
(async_queue.py reads the function's record).

Runtime management: each Runtime runs on one interpreter of this host, and
its runtime version ARN names it (arn:aws:lambda:<region>::runtime:
python:3.12.1). Auto and FunctionUpdate follow whatever the host runs;
Manual pins the function to the version it names, which must be the one
this host runs for that runtime now, and a server later started with
another one refuses to run the function (InvalidRuntimeException) rather
than run it on a version it was not pinned to.
"""

from __future__ import annotations

import uuid

import msgspec
import trio

from ..errors import LambdaError, invalid, not_found
from . import constraints
from .model import FunctionRecord
from .service import FunctionService


class FunctionConfigs:
    def __init__(self, service: FunctionService) -> None:
        self.service = service

    # -- recursion ------------------------------------------------------------

    def get_recursion(self, ref: str) -> dict:
        return {"RecursiveLoop": self.service.latest(ref).recursive_loop}

    async def put_recursion(self, ref: str, body: dict) -> dict:
        constraints.check_input("PutFunctionRecursionConfig", body, FunctionName=ref)
        svc = self.service
        async with svc._lock:
            latest = svc.latest(ref)
            await svc.save_latest(msgspec.structs.replace(latest, recursive_loop=body["RecursiveLoop"]))
        return {"RecursiveLoop": body["RecursiveLoop"]}

    # -- runtime management ---------------------------------------------------

    def _target(self, ref: str, qualifier: str | None) -> tuple[FunctionRecord, str]:
        svc = self.service
        name, qualifier = svc.qualified(ref, qualifier)
        qualifier = qualifier or "$LATEST"
        if qualifier != "$LATEST" and not qualifier.isdigit():
            raise invalid("Runtime management configurations apply to $LATEST or a published version, not to an alias.")
        rec = svc.registry.get(name) if qualifier == "$LATEST" else svc.versions.get(name, {}).get(qualifier)
        if rec is None:
            raise not_found(svc.arn(name, None if qualifier == "$LATEST" else qualifier))
        return rec, qualifier

    def get_runtime_management(self, ref: str, qualifier: str | None) -> dict:
        rec, qualifier = self._target(ref, qualifier)
        mode = rec.runtime_management.get("UpdateRuntimeOn", "Auto")
        doc = {"UpdateRuntimeOn": mode, "FunctionArn": self.service.arn(rec.name, qualifier)}
        if mode == "Manual":
            doc["RuntimeVersionArn"] = rec.runtime_management["RuntimeVersionArn"]
        return doc

    async def put_runtime_management(self, ref: str, qualifier: str | None, body: dict) -> dict:
        constraints.check_input("PutRuntimeManagementConfig", body, FunctionName=ref, Qualifier=qualifier)
        svc = self.service
        mode, pinned = body["UpdateRuntimeOn"], body.get("RuntimeVersionArn")
        async with svc._lock:
            rec, qualifier = self._target(ref, qualifier)
            if mode == "Manual":
                if not pinned:
                    raise invalid("RuntimeVersionArn is required when UpdateRuntimeOn is Manual.")
                runs = svc.runtime_version_arn(rec)
                if pinned != runs:
                    raise invalid(
                        f"Runtime version {pinned} is not available for {rec.runtime} on this server, "
                        f"which runs {runs or 'no interpreter for it'}."
                    )
            elif pinned:
                raise invalid("RuntimeVersionArn can only be given when UpdateRuntimeOn is Manual.")
            config = {"UpdateRuntimeOn": mode, **({"RuntimeVersionArn": pinned} if pinned else {})}
            # A new revision: instances are prepared for their runtime
            # version, and the next call checks the pin afresh.
            if qualifier == "$LATEST":
                await svc._persist(msgspec.structs.replace(rec, runtime_management=config))
            else:
                version = msgspec.structs.replace(rec, runtime_management=config, revision_id=_new_revision())
                async with svc._db:
                    await trio.to_thread.run_sync(svc.storage.put_version, version)
                svc.versions[rec.name][qualifier] = version
                svc._on_change(rec.name)
        doc = {"UpdateRuntimeOn": mode, "FunctionArn": svc.arn(rec.name, qualifier)}
        if pinned:
            doc["RuntimeVersionArn"] = pinned
        return doc


def pinned_elsewhere(rec: FunctionRecord, runs: str | None) -> LambdaError | None:
    """The error for a call to a function pinned (Manual) to a runtime
    version other than the one this host runs now; None when it may run."""
    config = rec.runtime_management
    if config.get("UpdateRuntimeOn") != "Manual" or config.get("RuntimeVersionArn") == runs:
        return None
    return LambdaError(
        "InvalidRuntimeException",
        f"The function is pinned to runtime version {config.get('RuntimeVersionArn')}, but this server runs "
        f"{runs or 'no interpreter'} for {rec.runtime}. Pin it to that one or set UpdateRuntimeOn to Auto.",
    )


def _new_revision() -> str:
    return str(uuid.uuid4())
