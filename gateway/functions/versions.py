"""Published versions, aliases and provisioned concurrency.

A version is an immutable snapshot of $LATEST's code and configuration,
numbered 1, 2, ...; an alias names a version (optionally sending a share of
calls to a second one). Provisioned concurrency keeps N instances of a
version or alias initialised; as on AWS it cannot be set on $LATEST.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable

import msgspec
import trio

from ..errors import LambdaError, invalid, not_found
from . import FunctionService, constraints, unsupported_settings
from . import validation as v
from .model import FunctionRecord

_NOT_PUBLISHED = "The function resource provided must be an alias or a published version."
# Fields that make a version differ from the last one published.
_SNAPSHOT_FIELDS = (
    "runtime",
    "role",
    "handler",
    "code_sha256_hex",
    "description",
    "timeout",
    "memory_size",
    "environment",
    "ephemeral_storage",
    "architectures",
    "logging_config",
    "layers",
)


def _now() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


class Versions:
    def __init__(self, service: FunctionService, on_provisioned: Callable[[], None] = lambda: None) -> None:
        self.service = service
        self._on_provisioned = on_provisioned

    # -- versions ----------------------------------------------------------

    async def publish(self, ref: str, body: dict) -> dict:
        constraints.check_input("PublishVersion", body, FunctionName=ref)
        unsupported_settings.refuse(body)
        svc = self.service
        async with svc._lock:
            latest = svc.latest(ref)
            if body.get("RevisionId") is not None and body["RevisionId"] != latest.revision_id:
                raise LambdaError(
                    "PreconditionFailedException",
                    "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
                )
            if body.get("CodeSha256") is not None and body["CodeSha256"] != latest.code_sha256_b64:
                raise invalid(
                    f"CodeSHA256 ({body['CodeSha256']}) is different from current CodeSHA256 in $LATEST ({latest.code_sha256_b64}). Please try again with the CodeSHA256 in $LATEST."
                )
            existing = svc.versions.get(latest.name, {})
            if existing:
                newest = existing[max(existing, key=int)]
                if all(getattr(newest, f) == getattr(latest, f) for f in _SNAPSHOT_FIELDS if f != "description"):
                    # AWS returns the last version when nothing changed.
                    return svc.configuration(newest)
            number = str(latest.next_version)
            version = msgspec.structs.replace(
                latest,
                version=number,
                revision_id=str(uuid.uuid4()),
                description=body.get("Description", latest.description),
                url_config=None,
                alias_urls={},
                reserved_concurrency=None,
                aliases={},
                provisioned={},
                policies={},  # a version starts with no policy of its own, as on AWS
                last_modified=_now(),
            )
            async with svc._db:
                await trio.to_thread.run_sync(svc.storage.put_version, version)
            svc.versions.setdefault(latest.name, {})[number] = version
            await self._save_latest(msgspec.structs.replace(latest, next_version=latest.next_version + 1))
        return svc.configuration(version)

    def list_versions(self, ref: str, marker: str | None, max_items: str | None) -> dict:
        svc = self.service
        latest = svc.latest(ref)
        name = latest.name
        records = [latest] + [svc.versions[name][k] for k in sorted(svc.versions.get(name, {}), key=int)]
        start = int(marker) if marker and marker.isdigit() else 0
        limit = int(max_items) if max_items is not None else 50
        page = records[start : start + limit]
        # As AWS lists them: $LATEST by its qualified ARN, no state fields.
        out: dict = {"Versions": [svc.configuration(r, listed=True, qualify_latest=True) for r in page]}
        if start + limit < len(records):
            out["NextMarker"] = str(start + limit)
        return out

    # -- aliases -----------------------------------------------------------

    def _alias_doc(self, name: str, alias: str, cfg: dict) -> dict:
        doc = {
            "AliasArn": self.service.arn(name, alias),
            "Name": alias,
            "FunctionVersion": cfg["FunctionVersion"],
            "Description": cfg.get("Description", ""),
            "RevisionId": cfg["RevisionId"],
        }
        if cfg.get("RoutingConfig"):
            doc["RoutingConfig"] = cfg["RoutingConfig"]
        return doc

    def _check_version(self, name: str, version: object) -> str:
        if version == "$LATEST":
            return version
        if not isinstance(version, str) or version not in self.service.versions.get(name, {}):
            raise not_found(self.service.arn(name, str(version)))
        return version

    def _routing(self, name: str, primary: str, value: object) -> dict | None:
        """AWS's order: too many weights, a weight's version that does not
        exist, $LATEST with weights, the primary version among the weights.
        (Weights out of 0.0-1.0 and keys that are not numbers broke the
        model already.)"""
        weights = (value or {}).get("AdditionalVersionWeights") if isinstance(value, dict) else None
        if not weights:
            return None
        if len(weights) > 1:
            raise invalid("Number of items in AdditionalVersionWeights cannot be greater than 1")
        for version in weights:
            self._check_version(name, version)
        if primary == "$LATEST":
            raise invalid("$LATEST is not supported for an alias pointing to more than 1 version")
        for version in weights:
            if version == primary:
                raise invalid(
                    f"Invalid function version {version}. Function version {version} is already included in routing configuration."
                )
        return {"AdditionalVersionWeights": {k: float(w) for k, w in weights.items()}}

    async def create_alias(self, ref: str, body: dict) -> dict:
        constraints.check_input("CreateAlias", body, FunctionName=ref)
        async with self.service._lock:
            alias = body["Name"]  # its pattern was checked against the model
            wanted = body.get("FunctionVersion")
            latest = self.service.latest(ref, missing=lambda n: not_found(self.service.arn(n, str(wanted))))
            version = self._check_version(latest.name, wanted)
            routing = self._routing(latest.name, version, body.get("RoutingConfig"))
            if alias == "$LATEST" or alias in latest.aliases:
                raise LambdaError("ResourceConflictException", f"Alias already exists: {self.service.arn(latest.name, alias)}")
            cfg: dict[str, object] = {
                "FunctionVersion": version,
                "Description": v.description(body.get("Description", "")),
                "RevisionId": str(uuid.uuid4()),
            }
            if routing:
                cfg["RoutingConfig"] = routing
            await self._save_latest(msgspec.structs.replace(latest, aliases={**latest.aliases, alias: cfg}))
            return self._alias_doc(latest.name, alias, cfg)

    def _no_alias(self, name: str, alias: str) -> LambdaError:
        return LambdaError("ResourceNotFoundException", f"Cannot find alias arn: {self.service.arn(name, alias)}")

    def get_alias(self, ref: str, alias: str) -> dict:
        latest = self._latest(ref)
        cfg = latest.aliases.get(alias)
        if cfg is None:
            raise self._no_alias(latest.name, alias)
        return self._alias_doc(latest.name, alias, cfg)

    async def update_alias(self, ref: str, alias: str, body: dict) -> dict:
        constraints.check_input("UpdateAlias", body, FunctionName=ref, Name=alias)
        async with self.service._lock:
            latest = self._latest(ref)
            cfg = latest.aliases.get(alias)
            if cfg is None:
                raise LambdaError("ResourceNotFoundException", f"Alias not found: {self.service.arn(latest.name, alias)}")
            if body.get("RevisionId") is not None and body["RevisionId"] != cfg["RevisionId"]:
                raise LambdaError(
                    "PreconditionFailedException",
                    "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
                )
            cfg = dict(cfg)
            if "FunctionVersion" in body:
                cfg["FunctionVersion"] = self._check_version(latest.name, body["FunctionVersion"])
            if "Description" in body:
                cfg["Description"] = v.description(body["Description"])
            if "RoutingConfig" in body:
                routing = self._routing(latest.name, cfg["FunctionVersion"], body["RoutingConfig"])
                cfg.pop("RoutingConfig", None)
                if routing:
                    cfg["RoutingConfig"] = routing
            cfg["RevisionId"] = str(uuid.uuid4())
            await self._save_latest(msgspec.structs.replace(latest, aliases={**latest.aliases, alias: cfg}))
            self._on_provisioned()
            return self._alias_doc(latest.name, alias, cfg)

    async def delete_alias(self, ref: str, alias: str) -> None:
        async with self.service._lock:
            latest = self._latest(ref)
            if alias not in latest.aliases:
                raise self._no_alias(latest.name, alias)
            # Its provisioned concurrency, URL and policy go with it.
            aliases = {k: c for k, c in latest.aliases.items() if k != alias}
            provisioned = {k: c for k, c in latest.provisioned.items() if k != alias}
            urls = {k: c for k, c in latest.alias_urls.items() if k != alias}
            policies = {k: p for k, p in latest.policies.items() if k != alias}
            await self._save_latest(
                msgspec.structs.replace(latest, aliases=aliases, provisioned=provisioned, alias_urls=urls, policies=policies)
            )
            self._on_provisioned()

    def list_aliases(self, ref: str, function_version: str | None) -> dict:
        latest = self._latest(ref)
        return {
            "Aliases": [
                self._alias_doc(latest.name, a, c)
                for a, c in sorted(latest.aliases.items())
                if function_version is None or c["FunctionVersion"] == function_version
            ]
        }

    # -- provisioned concurrency -------------------------------------------

    def provisioned_targets(self) -> list[tuple[FunctionRecord, str, int]]:
        """(version record, qualifier, instances wanted) for every config."""
        out = []
        for latest in self.service.registry.values():
            for qualifier, cfg in latest.provisioned.items():
                version = latest.aliases[qualifier]["FunctionVersion"] if qualifier in latest.aliases else qualifier
                rec = self.service.versions.get(latest.name, {}).get(version)
                if rec is not None:
                    out.append((rec, qualifier, cfg["Requested"]))
        return out

    def _target(self, ref: str, qualifier: str, on_latest: str) -> tuple[FunctionRecord, str]:
        """$LATEST and the version or alias a provisioned config is for,
        refused as AWS refuses each: $LATEST (on_latest says how), then a
        missing alias or version (of a function that may not exist)."""
        name, _ = self.service.parse(ref)
        if qualifier == "$LATEST":
            raise invalid(on_latest)
        latest = self.service.registry.get(name)
        if qualifier.isdigit():
            if latest is None or qualifier not in self.service.versions.get(name, {}):
                raise not_found(self.service.arn(name, qualifier))
        elif latest is None or qualifier not in latest.aliases:
            raise self._no_alias(name, qualifier)
        assert latest is not None
        return latest, qualifier

    async def put_provisioned(self, ref: str, qualifier: str | None, body: dict, available: Callable[[str, str], int]) -> dict:
        constraints.check_input("PutProvisionedConcurrencyConfig", body, FunctionName=ref, Qualifier=qualifier)
        async with self.service._lock:
            latest, qualifier = self._target(
                ref, qualifier or "", "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
            )
            n = body["ProvisionedConcurrentExecutions"]  # at least 1, by the model
            others = sum(c["Requested"] for q, c in latest.provisioned.items() if q != qualifier)
            if latest.reserved_concurrency is not None and others + n > latest.reserved_concurrency:
                raise invalid("Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function")
            cfg = {"Requested": n, "LastModified": _now()}
            await self._save_latest(msgspec.structs.replace(latest, provisioned={**latest.provisioned, qualifier: cfg}))
            self._on_provisioned()
            return self._provisioned_doc(latest.name, qualifier, cfg, available(latest.name, qualifier))

    def _provisioned_doc(self, name: str, qualifier: str, cfg: dict, ready: int) -> dict:
        requested = cfg["Requested"]
        ready = min(ready, requested)
        return {
            "FunctionArn": self.service.arn(name, qualifier),
            "RequestedProvisionedConcurrentExecutions": requested,
            "AvailableProvisionedConcurrentExecutions": ready,
            "AllocatedProvisionedConcurrentExecutions": ready,
            "Status": "READY" if ready >= requested else "IN_PROGRESS",
            "LastModified": cfg["LastModified"],
        }

    def get_provisioned(self, ref: str, qualifier: str | None, available: Callable[[str, str], int]) -> dict:
        latest, qualifier = self._target(ref, qualifier or "", _NOT_PUBLISHED)
        cfg = latest.provisioned.get(qualifier)
        if cfg is None:
            raise LambdaError("ProvisionedConcurrencyConfigNotFoundException", "No Provisioned Concurrency Config found for this function")
        doc = self._provisioned_doc(latest.name, qualifier, cfg, available(latest.name, qualifier))
        doc.pop("FunctionArn")
        return doc

    async def delete_provisioned(self, ref: str, qualifier: str | None) -> None:
        async with self.service._lock:
            latest, qualifier = self._target(ref, qualifier or "", _NOT_PUBLISHED)
            if qualifier not in latest.provisioned:
                raise LambdaError(
                    "ProvisionedConcurrencyConfigNotFoundException", "No Provisioned Concurrency Config found for this function"
                )
            await self._save_latest(
                msgspec.structs.replace(latest, provisioned={k: c for k, c in latest.provisioned.items() if k != qualifier})
            )
            self._on_provisioned()

    def list_provisioned(self, ref: str, available: Callable[[str, str], int]) -> dict:
        latest = self._latest(ref)
        return {
            "ProvisionedConcurrencyConfigs": [
                self._provisioned_doc(latest.name, q, c, available(latest.name, q)) for q, c in sorted(latest.provisioned.items())
            ]
        }

    # -- helpers -------------------------------------------------------------

    def _latest(self, ref: str) -> FunctionRecord:
        return self.service.latest(ref)

    async def _save_latest(self, rec: FunctionRecord) -> None:
        await self.service.save_latest(rec)
