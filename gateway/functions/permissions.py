"""AddPermission, RemovePermission and GetPolicy, and PutResourcePolicy,
GetResourcePolicy and DeleteResourcePolicy (the same policy, named by its
resource's ARN and written as a whole document): a function's
resource-based policy, one per function and per version or alias, kept on
$LATEST's record.

As on AWS, a policy's RevisionId is its resource's: the function's for the
unqualified policy (so adding a statement gives the function a new
RevisionId), the version's or the alias's for theirs. AWS does not let a
policy be put on $LATEST by name, and a published version starts with none.
"""

from __future__ import annotations

import uuid

import msgspec
import trio

from ..errors import LambdaError, invalid, not_found
from . import constraints, policy
from .model import FunctionRecord
from .service import FunctionService

_NO_RESOURCE = "The resource you requested does not exist."


class Permissions:
    def __init__(self, service: FunctionService) -> None:
        self.service = service

    def _target(self, ref: str, qualifier: str | None, *, missing_function) -> tuple[FunctionRecord, str]:
        """$LATEST and the policy's key ("" for the function itself)."""
        svc = self.service
        name, qualifier = svc.qualified(ref, qualifier)
        latest = svc.registry.get(name)
        if latest is None:
            raise missing_function(name, qualifier)
        if qualifier is None:
            return latest, ""
        if qualifier.isdigit():
            if qualifier not in svc.versions.get(name, {}):
                raise not_found(svc.arn(name, qualifier))
        elif qualifier not in latest.aliases:
            raise LambdaError("ResourceNotFoundException", f"Cannot find alias arn: {svc.arn(name, qualifier)}")
        return latest, qualifier

    def revision(self, latest: FunctionRecord, key: str) -> str:
        if key == "":
            return latest.revision_id
        if key in latest.aliases:
            return latest.aliases[key]["RevisionId"]
        return self.service.versions[latest.name][key].revision_id

    async def add(self, ref: str, qualifier: str | None, body: dict) -> dict:
        constraints.check_input("AddPermission", body, FunctionName=ref, Qualifier=qualifier)
        svc = self.service
        name, given = svc.qualified(ref, qualifier)
        if given == "$LATEST":
            raise invalid("We currently do not support adding policies for $LATEST.")
        async with svc._lock:
            latest, key = self._target(ref, qualifier, missing_function=lambda n, q: not_found(svc.arn(n, q)))
            doc = policy.statement(body, svc.arn(latest.name, key or None))
            if body.get("RevisionId") is not None and body["RevisionId"] != self.revision(latest, key):
                raise policy.revision_mismatch()
            statements = latest.policies.get(key, [])
            if any(s.get("Sid") == doc["Sid"] for s in statements):
                raise LambdaError(
                    "ResourceConflictException",
                    f"The statement id ({doc['Sid']}) provided already exists. "
                    "Please provide a new statement id, or remove the existing statement.",
                )
            policy.check_size([*statements, doc])
            await self._save(latest, key, [*statements, doc])
        return {"Statement": policy.encoded(doc)}

    async def remove(self, ref: str, sid: str, qualifier: str | None, revision_id: str | None) -> None:
        constraints.check_input("RemovePermission", FunctionName=ref, StatementId=sid, Qualifier=qualifier, RevisionId=revision_id)
        svc = self.service
        async with svc._lock:
            latest, key = self._target(
                ref,
                qualifier,
                missing_function=lambda n, q: LambdaError("ResourceNotFoundException", f"No policy found for: {svc.arn(n, q)}"),
            )
            statements = latest.policies.get(key, [])
            if not statements:
                raise LambdaError("ResourceNotFoundException", "No policy is associated with the given resource.")
            if not any(s.get("Sid") == sid for s in statements):
                raise LambdaError("ResourceNotFoundException", f"Statement {sid} is not found in resource policy.")
            if revision_id is not None and revision_id != self.revision(latest, key):
                raise policy.revision_mismatch()
            await self._save(latest, key, [s for s in statements if s.get("Sid") != sid])

    def get(self, ref: str, qualifier: str | None) -> dict:
        try:
            latest, key = self._target(ref, qualifier, missing_function=lambda n, q: LambdaError("ResourceNotFoundException", _NO_RESOURCE))
        except LambdaError as exc:
            if exc.error_type == "ResourceNotFoundException":
                raise LambdaError("ResourceNotFoundException", _NO_RESOURCE) from None
            raise
        statements = latest.policies.get(key)
        if not statements:
            raise LambdaError("ResourceNotFoundException", _NO_RESOURCE)
        return {"Policy": policy.document(statements), "RevisionId": self.revision(latest, key)}

    # -- the policy as a whole document, named by its resource's ARN --------

    def _by_arn(self, arn: str, missing_function) -> tuple[FunctionRecord, str]:
        """A PolicyResourceArn's $LATEST and policy key. The model also
        admits runtime ARNs (arn:...:runtime/...): no such resource is
        kept here, so none is found."""
        if ":function:" not in arn:
            raise LambdaError("ResourceNotFoundException", _NO_RESOURCE)
        return self._target(arn, None, missing_function=missing_function)

    async def put_document(self, arn: str, body: dict) -> dict:
        constraints.check_input("PutResourcePolicy", body, ResourceArn=arn)
        svc = self.service
        if ":function:" in arn and svc.parse(arn)[1] == "$LATEST":
            raise invalid("We currently do not support adding policies for $LATEST.")
        async with svc._lock:
            latest, key = self._by_arn(arn, lambda n, q: not_found(svc.arn(n, q)))
            statements = policy.statements_of(body["Policy"], svc.arn(latest.name, key or None))
            if body.get("RevisionId") is not None and body["RevisionId"] != self.revision(latest, key):
                raise policy.revision_mismatch("GetResourcePolicy")
            policy.check_size(statements)
            await self._save(latest, key, statements)
            return {"Policy": policy.document(statements), "RevisionId": self.revision(svc.registry[latest.name], key)}

    def get_document(self, arn: str) -> dict:
        latest, key = self._by_arn(arn, lambda n, q: LambdaError("ResourceNotFoundException", _NO_RESOURCE))
        statements = latest.policies.get(key)
        if not statements:
            raise LambdaError("ResourceNotFoundException", _NO_RESOURCE)
        return {"Policy": policy.document(statements), "RevisionId": self.revision(latest, key)}

    async def delete_document(self, arn: str, revision_id: str | None) -> None:
        constraints.check_input("DeleteResourcePolicy", ResourceArn=arn, RevisionId=revision_id)
        svc = self.service
        async with svc._lock:
            latest, key = self._by_arn(arn, lambda n, q: not_found(svc.arn(n, q)))
            if not latest.policies.get(key):
                raise LambdaError("ResourceNotFoundException", "No policy is associated with the given resource.")
            if revision_id is not None and revision_id != self.revision(latest, key):
                raise policy.revision_mismatch("GetResourcePolicy")
            await self._save(latest, key, [])

    async def open_url(self, name: str, qualifier: str | None = None) -> None:
        """Adds what the AWS console adds for a URL with AuthType NONE
        (those of its statements the policy lacks)."""
        latest = self.service.latest(name)
        have = {s["Sid"] for s in latest.policies.get(qualifier or "", [])}
        for statement in policy.PUBLIC_URL_STATEMENTS:
            if statement["StatementId"] not in have:
                await self.add(name, qualifier, dict(statement))

    def allows(
        self, function: str, qualifier: str, *, principal: str, action: str, source_arn: str | None, source_account: str | None
    ) -> bool:
        """For event sources (events/policy.py's InvokePolicy): whether the
        function's (or the version's or alias's) policy lets the service
        principal do action for that source."""
        latest = self.service.registry.get(function)
        if latest is None:
            return False
        key = "" if qualifier in ("", "$LATEST") else qualifier
        statements = latest.policies.get(key)
        if not statements:
            return False
        return policy.allows_service(
            statements, principal, action, self.service.arn(function, key or None), source_arn=source_arn, source_account=source_account
        )

    async def _save(self, latest: FunctionRecord, key: str, statements: list[dict]) -> None:
        """The new policy, committed with a new RevisionId for its resource."""
        svc = self.service
        policies = {k: v for k, v in latest.policies.items() if k != key}
        if statements:
            policies[key] = statements
        if key == "":
            await svc._persist(msgspec.structs.replace(latest, policies=policies))
            return
        if key in latest.aliases:
            aliases = {**latest.aliases, key: {**latest.aliases[key], "RevisionId": str(uuid.uuid4())}}
            await svc.save_latest(msgspec.structs.replace(latest, policies=policies, aliases=aliases))
            return
        version = msgspec.structs.replace(svc.versions[latest.name][key], revision_id=str(uuid.uuid4()))
        async with svc._db:
            await trio.to_thread.run_sync(svc.storage.put_version, version)
        svc.versions[latest.name][key] = version
        await svc.save_latest(msgspec.structs.replace(latest, policies=policies))
        svc._on_change(latest.name)  # the version's instances carry its old revision
