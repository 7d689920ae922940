"""The control plane's operations on functions, independent of HTTP.

FunctionService is the FunctionDirectory (directory.py: lookups, reads)
that can also change what it holds. Each operation takes the decoded request (a dict shaped as botocore's model
gives it) and returns the response document, or raises LambdaError. The
in-memory registry is the invoke path's source of truth; SQLite and the
code store make it durable before any method returns.
"""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
import trio

from .. import crashpoints
from ..errors import LambdaError, disk_full, invalid, not_found
from . import constraints
from . import validation as v
from .codestore import CodeError, CodeStore
from .directory import FunctionDirectory
from .disk_reserve import DiskReserve
from .function_input import ACCOUNT_LIMITS, check_unzipped, config_fields, now_iso, page_of_names, zip_from
from .layer_records import LayerRef
from .layers import LayerService
from .model import FunctionRecord
from .runtimes import RuntimeCatalog
from .storage import Storage

if TYPE_CHECKING:
    from .code_signing import CodeSigning


class FunctionService(FunctionDirectory):
    def __init__(
        self,
        storage: Storage,
        codes: CodeStore,
        *,
        region: str,
        account: str,
        concurrency_limit: int,
        on_change: Callable[[str], None] = lambda name: None,
        on_code_unneeded: Callable[..., None] = lambda *digests: None,
        runtimes: RuntimeCatalog | None = None,
        reserve: DiskReserve | None = None,
        lock: trio.Lock | None = None,
        layers: LayerService | None = None,
        code_signing: CodeSigning | None = None,
    ) -> None:
        """lock: the one every store-then-persist of code holds (code_gc.py
        says why), shared with the layer service. layers: the layers a
        function's Layers name. code_signing: checks uploads to functions
        with a code signing config."""
        super().__init__(
            storage.load_functions(),
            storage.load_versions(),
            region=region,
            account=account,
            # What each Runtime runs on here; by default only this server's own Python.
            runtimes=runtimes or RuntimeCatalog.own_only(),
            layers=layers,
        )
        self.storage = storage
        self.reserve = reserve
        self.codes = codes
        self.concurrency_limit = concurrency_limit
        self._on_change = on_change
        # Told the digests of code that may no longer be named by any record
        # (code_gc.CodeCollector.suspect); it checks, so telling too often is safe.
        self._on_code_unneeded = on_code_unneeded
        self._lock = lock if lock is not None else trio.Lock()
        self._db = trio.CapacityLimiter(1)
        self.code_signing = code_signing

    # -- operations --------------------------------------------------------

    async def create(self, body: dict) -> dict:
        constraints.check_input("CreateFunction", body)
        name = v.new_function_name(body.get("FunctionName"))
        self.parse(body["FunctionName"])  # an ARN must name this region and account
        if body.get("PackageType", "Zip") != "Zip":
            raise invalid("PackageType Image is not supported by this server; deploy a .zip package.")
        if body.get("Runtime") is None or body.get("Handler") is None:
            # AWS's words for a .zip function created without either.
            raise invalid("Runtime and Handler are mandatory parameters for functions created with deployment packages.")
        runtime = self.runtimes.check(v.runtime(body.get("Runtime")))
        role = v.role(body.get("Role"))
        handler = v.handler(body.get("Handler"), runtime)
        zip_bytes = zip_from(body.get("Code"))
        fields = config_fields(body)
        tags = v.validate_tags(body.get("Tags") or {})
        config_arn = body.get("CodeSigningConfigArn")
        if config_arn:
            fields["code_signing_config_arn"] = config_arn
            fields["signing_profile_version_arn"] = self._check_signature(name, config_arn, zip_bytes)
        async with self._lock:
            if name in self.registry:
                raise LambdaError("ResourceConflictException", f"Function already exist: {name}")
            layers = self._layer_refs(body["Layers"]) if "Layers" in body else []
            if config_arn:
                await self._check_layer_signatures(name, config_arn, layers)
            stored = await self._store_code(zip_bytes)
            # Collected if the record below never commits.
            self._on_code_unneeded(stored.sha256_hex)
            check_unzipped(stored.unzipped_size, layers)
            rec = FunctionRecord(
                name=name,
                runtime=runtime,
                role=role,
                handler=handler,
                code_sha256_hex=stored.sha256_hex,
                code_sha256_b64=stored.sha256_b64,
                code_size=stored.size,
                code_unzipped_size=stored.unzipped_size,
                layers=layers,
                tags=dict(tags),
                revision_id=str(uuid.uuid4()),
                last_modified=now_iso(),
                created_ns=time.time_ns(),
                **fields,
            )
            await self._persist(rec)
        conf = self.configuration(rec)
        # AWS answers Pending, with no LastUpdateStatus yet, and turns Active
        # once the code is ready. Ours is ready before we answer, so the next
        # read already says Active.
        del conf["LastUpdateStatus"]
        conf.update(State="Pending", StateReason="The function is being created.", StateReasonCode="Creating")
        return conf

    async def get(self, ref: str, qualifier: str | None, code_url: Callable[[FunctionRecord], str]) -> dict:
        rec = self.resolve(ref, qualifier)
        out = {
            "Configuration": self.configuration(rec),
            "Code": {"RepositoryType": "S3", "Location": code_url(rec)},
        }
        if rec.tags:
            out["Tags"] = dict(rec.tags)
        return out

    def list(self, marker: str | None, max_items: str | None, function_version: str | None = None) -> dict:
        # MaxItems and FunctionVersion were checked against the model.
        page, next_marker = page_of_names(sorted(self.registry), marker, max_items)
        every_version = function_version == "ALL"
        records = []
        for n in page:
            records.append(self.registry[n])
            if every_version:
                records.extend(self.versions.get(n, {})[k] for k in sorted(self.versions.get(n, {}), key=int))
        # With every version listed, AWS names $LATEST by its qualified ARN.
        out: dict = {"Functions": [self.configuration(r, listed=True, qualify_latest=every_version) for r in records]}
        if next_marker is not None:
            out["NextMarker"] = next_marker
        return out

    async def update_code(self, ref: str, body: dict) -> dict:
        constraints.check_input("UpdateFunctionCode", body, FunctionName=ref)
        zip_bytes = zip_from(body)
        arch = v.architectures(body["Architectures"]) if "Architectures" in body else None
        async with self._lock:
            rec = self._for_update(ref, body.get("RevisionId"))
            signer = self._check_signature(rec.name, rec.code_signing_config_arn, zip_bytes) if rec.code_signing_config_arn else None
            stored = await self._store_code(zip_bytes)
            # The new code, if this never commits (or is a dry run), and the
            # code it replaces, once nothing runs it.
            self._on_code_unneeded(stored.sha256_hex, rec.code_sha256_hex)
            check_unzipped(stored.unzipped_size, rec.layers)
            if body.get("DryRun"):
                return self.configuration(rec)
            rec = msgspec.structs.replace(
                rec,
                code_sha256_hex=stored.sha256_hex,
                code_sha256_b64=stored.sha256_b64,
                code_size=stored.size,
                code_unzipped_size=stored.unzipped_size,
                architectures=arch or rec.architectures,
                signing_profile_version_arn=signer,
            )
            await self._persist(rec)
        return self._in_progress(rec)

    async def update_configuration(self, ref: str, body: dict) -> dict:
        constraints.check_input("UpdateFunctionConfiguration", body, FunctionName=ref)
        async with self._lock:
            rec = self._for_update(ref, body.get("RevisionId"))
            changes = config_fields(body, partial=True)
            if "Runtime" in body:
                changes["runtime"] = self.runtimes.check(v.runtime(body["Runtime"]))
            if "Role" in body:
                changes["role"] = v.role(body["Role"])
            if "Handler" in body or "runtime" in changes:
                changes["handler"] = v.handler(body.get("Handler", rec.handler), changes.get("runtime", rec.runtime))
            if "Layers" in body:
                changes["layers"] = self._layer_refs(body["Layers"])
                check_unzipped(await self._unzipped(rec), changes["layers"])
                if rec.code_signing_config_arn:
                    await self._check_layer_signatures(rec.name, rec.code_signing_config_arn, changes["layers"])
            old = rec
            rec = msgspec.structs.replace(rec, **changes)
            await self._persist(rec)
            # Layers it no longer names, once nothing else does either.
            self._on_code_unneeded(*{layer.sha256_hex for layer in old.layers} - {layer.sha256_hex for layer in rec.layers})
        return self._in_progress(rec)

    async def delete(self, ref: str, qualifier: str | None) -> None:
        async with self._lock:
            name, qualifier = self.qualified(ref, qualifier)
            if name not in self.registry:
                raise not_found(self.arn(name))
            if qualifier == "$LATEST":
                raise invalid("$LATEST version cannot be deleted without deleting the function.")
            if qualifier is not None:
                await self._delete_version(name, qualifier)
                return
            async with self._db:
                await self._freeing_write(self.storage.delete_function, name)
            crashpoints.reach("function-delete:committed")
            gone = self.registry.pop(name)
            versions = self.versions.pop(name, {})
            self._on_code_unneeded(*_digests(gone, *versions.values()))
        self._on_change(name)

    async def _freeing_write(self, write: Callable[..., None], *args: object) -> None:
        """A write that frees space (a delete): on a full disk it spends
        the reserve (disk_reserve.py) and tries once more."""
        try:
            await trio.to_thread.run_sync(write, *args)
        except Exception as exc:
            if not (disk_full(exc) and self.reserve is not None and self.reserve.release()):
                raise
            await trio.to_thread.run_sync(write, *args)

    async def _delete_version(self, name: str, version: str) -> None:
        if version not in self.versions.get(name, {}):
            raise not_found(self.arn(name, version))
        users = sorted(
            a
            for a, cfg in self.registry[name].aliases.items()
            if cfg["FunctionVersion"] == version or version in (cfg.get("RoutingConfig") or {}).get("AdditionalVersionWeights", {})
        )
        if users:
            raise LambdaError("ResourceConflictException", f"Unable to delete version because the following aliases reference it: {users}")
        async with self._db:
            await self._freeing_write(self.storage.delete_version, name, version)
        gone = self.versions[name].pop(version)
        self._on_code_unneeded(*_digests(gone))
        latest = self.registry[name]
        if version in latest.provisioned:
            # Its provisioned concurrency goes with it, as on AWS.
            latest = msgspec.structs.replace(latest, provisioned={q: c for q, c in latest.provisioned.items() if q != version})
            async with self._db:
                await trio.to_thread.run_sync(self.storage.put_function, latest)
            self.registry[name] = latest
        self._on_change(name)

    def account_settings(self) -> dict:
        total = sum(r.code_size for r in self.registry.values())
        if self.layers is not None:
            # AWS counts layer archives in TotalCodeSize too.
            total += sum(r.code_size for versions in self.layers.layers.values() for r in versions.values())
        return {
            "AccountLimit": {
                **ACCOUNT_LIMITS,
                "ConcurrentExecutions": self.concurrency_limit,
                "UnreservedConcurrentExecutions": self.concurrency_limit - self.reserved_total(),
            },
            "AccountUsage": {"TotalCodeSize": total, "FunctionCount": len(self.registry)},
        }

    # -- helpers -----------------------------------------------------------

    def _layer_refs(self, arns: object) -> builtins.list[LayerRef]:
        if self.layers is None:
            raise invalid("Layers are not available on this server.")
        return self.layers.refs_for(arns)

    async def _unzipped(self, rec: FunctionRecord) -> int:
        if rec.code_unzipped_size:
            return rec.code_unzipped_size
        try:
            return await trio.to_thread.run_sync(self.codes.unzipped_size, rec.code_sha256_hex)
        except (OSError, CodeError):
            return 0

    def _for_update(self, ref: str, revision_id: object) -> FunctionRecord:
        # Only $LATEST changes; published versions are immutable.
        name, qualifier = self.parse(ref)
        if qualifier not in (None, "$LATEST"):
            raise invalid(f"Updates apply to $LATEST only; {self.arn(name, qualifier)} is a published version or alias and cannot change.")
        rec = self.registry.get(name)
        if rec is None:
            raise not_found(self.arn(name))
        if revision_id is not None and revision_id != rec.revision_id:
            raise LambdaError(
                "PreconditionFailedException",
                "The Revision Id provided does not match the latest Revision Id. "
                "Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
            )
        return rec

    def _in_progress(self, rec: FunctionRecord) -> dict:
        conf = self.configuration(rec)
        conf.update(
            LastUpdateStatus="InProgress",
            LastUpdateStatusReason="The function is being created.",
            LastUpdateStatusReasonCode="Creating",
        )
        return conf

    async def _persist(self, rec: FunctionRecord) -> None:
        rec.revision_id = str(uuid.uuid4()) if rec.name in self.registry else rec.revision_id
        rec.last_modified = now_iso()
        async with self._db:
            await trio.to_thread.run_sync(self.storage.put_function, rec)
        self.registry[rec.name] = rec
        self._on_change(rec.name)

    def _check_signature(self, name: str, config_arn: str, package: bytes, *, layer: str | None = None) -> str | None:
        if self.code_signing is None:
            raise invalid("Code signing is not available on this server.")
        return self.code_signing.check(name, config_arn, package, layer=layer)

    async def _check_layer_signatures(self, name: str, config_arn: str, layers: builtins.list[LayerRef]) -> None:
        """Each layer version a function under a code signing config is
        given passes the config, as its own code does (read from the code
        store: a layer's blob is the zip as published, signature and all)."""
        for layer in layers:
            package = await trio.to_thread.run_sync(self.codes.blob_path(layer.sha256_hex).read_bytes)
            self._check_signature(name, config_arn, package, layer=layer.arn)

    async def save_latest(self, rec: FunctionRecord) -> None:
        """Persists $LATEST's bookkeeping (versions, aliases, provisioned
        configs, policies) without a new RevisionId: the code and its
        instances stay as they are."""
        async with self._db:
            await trio.to_thread.run_sync(self.storage.put_function, rec)
        self.registry[rec.name] = rec

    async def _store_code(self, data: bytes):
        try:
            return await trio.to_thread.run_sync(self.codes.put, data)
        except CodeError as exc:
            raise invalid(str(exc)) from None


def _digests(*records: FunctionRecord) -> list[str]:
    """The code and layer content each record names."""
    return [d for rec in records for d in (rec.code_sha256_hex, *(layer.sha256_hex for layer in rec.layers))]
