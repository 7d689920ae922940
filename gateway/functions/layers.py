"""Lambda layers: versions of a zip that functions mount at /opt. No HTTP.

A layer version is immutable: its content (stored by sha256 in the same
code store as functions' code, so equal zips are kept once), its
description, license and compatibility lists. Version numbers count up per
layer name and are never reused, even after every version was deleted.
Deleting a version stops new functions from naming it; functions that
already name it keep their copy (their records carry the digest, which
keeps the content out of the code GC's reach), as on AWS.

Permissions (AddLayerVersionPermission) are stored as AWS shapes them and
returned by GetLayerVersionPolicy. This server has one account, so they
grant nothing beyond what its owner already has; they exist so that
templates and tools that set them work unchanged.

Every method takes decoded request values and returns the response
document, or raises LambdaError, like functions.py. The values are checked
in layer_input.py, the policy's statements made in layer_policy.py; the
records are layer_records.py's.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Iterable

import msgspec
import trio

from ..errors import LambdaError, invalid
from . import layer_policy
from .codestore import CodeError, CodeStore
from .layer_input import (
    LAYER_NAME_RE,
    LAYER_REF_RE,
    LAYER_VERSION_ARN_RE,
    MAX_FUNCTION_LAYERS,
    VERSION_ARN_PATTERN,
    check_filters,
    compatible_architectures,
    compatible_runtimes,
    decode_marker,
    encode_marker,
    matching,
    not_found,
    page_limit,
    pattern_error,
    version_number,
    zip_from,
)
from .layer_records import LayerRef, LayerVersionRecord


def _now_iso() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


class LayerService:
    def __init__(
        self,
        storage,
        codes: CodeStore,
        *,
        region: str,
        account: str,
        lock: trio.Lock,
        runtimes: Iterable[str],
        on_code_unneeded: Callable[..., None] = lambda *digests: None,
        on_version_deleted: Callable[[str, int], None] = lambda name, version: None,
    ) -> None:
        """lock: the function service's, which every store-then-persist of
        code holds (code_gc.py says why). runtimes: the Runtime values
        Lambda's model allows, for CompatibleRuntimes. on_version_deleted:
        told each deleted version (its download links end with it)."""
        self.storage = storage
        self.codes = codes
        self.region = region
        self.account = account
        self._lock = lock
        self._runtimes = tuple(runtimes)
        self._on_code_unneeded = on_code_unneeded
        self._on_version_deleted = on_version_deleted
        self._db = trio.CapacityLimiter(1)
        self.layers: dict[str, dict[int, LayerVersionRecord]] = {}
        for rec in storage.load_layer_versions():
            self.layers.setdefault(rec.name, {})[rec.version] = rec
        # The last version number each layer name has used, deleted or not.
        self.last_version: dict[str, int] = dict(storage.load_layer_counters())

    # -- names and ARNs ------------------------------------------------------

    def layer_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:layer:{name}"

    def version_arn(self, name: str, version: int) -> str:
        return f"{self.layer_arn(name)}:{version}"

    def _name(self, ref: object) -> str:
        """LayerName from a path: a name or a layer ARN of this region and account."""
        if not isinstance(ref, str) or not 1 <= len(ref) <= 140:
            raise invalid(
                f"1 validation error detected: Value '{ref}' at 'layerName' failed to satisfy constraint: "
                "Member must have length less than or equal to 140"
            )
        m = LAYER_REF_RE.match(ref)
        if m is None:
            raise pattern_error(ref, "layerName", LAYER_REF_RE.pattern[1:-1])
        if m.group("region") is not None and (m.group("region"), m.group("account")) != (self.region, self.account):
            # Another account's or region's layer: nothing of it is here.
            raise not_found()
        return m.group("name")

    def _find(self, ref: object, version: object) -> LayerVersionRecord:
        rec = self.layers.get(self._name(ref), {}).get(version_number(version))
        if rec is None:
            raise not_found()
        return rec

    # -- what the function service asks ---------------------------------------

    def refs_for(self, arns: object) -> list[LayerRef]:
        """A function's Layers, checked: at most five, each an existing
        version of this account's layers, no layer twice."""
        if not isinstance(arns, list) or not all(isinstance(a, str) for a in arns):
            raise invalid("Layers must be a list of layer version ARNs.")
        if len(arns) > MAX_FUNCTION_LAYERS:
            raise invalid(f"Cannot reference more than {MAX_FUNCTION_LAYERS} layers.")
        refs: list[LayerRef] = []
        seen: dict[str, str] = {}
        for arn in arns:
            if len(arn) > 140 or not LAYER_VERSION_ARN_RE.match(arn):
                raise pattern_error(arn, "layers", VERSION_ARN_PATTERN)
            m = LAYER_VERSION_ARN_RE.match(arn)
            assert m is not None
            name = m.group("name")
            if name in seen:
                raise invalid(
                    "Two different versions of the same layer are not allowed to be referenced in the same "
                    f"function. {seen[name]} and {arn} reference the same layer."
                )
            seen[name] = arn
            rec = None
            if (m.group("region"), m.group("account")) == (self.region, self.account):
                rec = self.layers.get(name, {}).get(int(m.group("version")))
            if rec is None:
                raise invalid(f"Layer version {arn} does not exist.")
            refs.append(LayerRef(self.version_arn(rec.name, rec.version), rec.code_size, rec.code_sha256_hex, rec.unzipped_size))
        return refs

    def referenced_code(self) -> set[str]:
        return {rec.code_sha256_hex for versions in self.layers.values() for rec in versions.values()}

    # -- operations -------------------------------------------------------------

    async def publish(self, ref: object, body: dict, code_url: Callable[[LayerVersionRecord], str]) -> dict:
        name = self._name(ref)
        if not LAYER_NAME_RE.match(name):
            raise pattern_error(ref, "layerName", "[a-zA-Z0-9-_]+")
        data = zip_from(body.get("Content"))
        description = body.get("Description", "")
        if not isinstance(description, str) or len(description) > 256:
            raise invalid(
                "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 256"
            )
        runtimes = compatible_runtimes(body.get("CompatibleRuntimes", []), self._runtimes)
        architectures = compatible_architectures(body.get("CompatibleArchitectures", []))
        license_info = body.get("LicenseInfo")
        if license_info is not None and (not isinstance(license_info, str) or len(license_info) > 512):
            raise invalid(
                "1 validation error detected: Value at 'licenseInfo' failed to satisfy constraint: Member must have length less than or equal to 512"
            )
        async with self._lock:
            try:
                stored = await trio.to_thread.run_sync(self.codes.put, data)
            except CodeError as exc:
                raise invalid(str(exc)) from None
            # Collected if the record below never commits.
            self._on_code_unneeded(stored.sha256_hex)
            version = self.last_version.get(name, 0) + 1
            rec = LayerVersionRecord(
                name=name,
                version=version,
                description=description,
                created_date=_now_iso(),
                compatible_runtimes=runtimes,
                compatible_architectures=architectures,
                license_info=license_info,
                code_sha256_hex=stored.sha256_hex,
                code_sha256_b64=stored.sha256_b64,
                code_size=stored.size,
                unzipped_size=stored.unzipped_size,
            )
            async with self._db:
                await trio.to_thread.run_sync(self.storage.put_layer_version, rec, version)
            self.last_version[name] = version
            self.layers.setdefault(name, {})[version] = rec
        return self._version_doc(rec, code_url)

    def get(self, ref: object, version: object, code_url: Callable[[LayerVersionRecord], str]) -> dict:
        return self._version_doc(self._find(ref, version), code_url)

    def get_by_arn(self, arn: object, code_url: Callable[[LayerVersionRecord], str]) -> dict:
        if not isinstance(arn, str) or not arn:
            raise invalid("1 validation error detected: Value null at 'arn' failed to satisfy constraint: Member must not be null")
        m = LAYER_VERSION_ARN_RE.match(arn)
        if len(arn) > 2048 or m is None:
            raise pattern_error(arn, "arn", VERSION_ARN_PATTERN)
        if (m.group("region"), m.group("account")) != (self.region, self.account):
            raise not_found()
        return self.get(m.group("name"), m.group("version"), code_url)

    def list_layers(self, runtime: str | None, architecture: str | None, marker: str | None, max_items: str | None) -> dict:
        check_filters(runtime, architecture, self._runtimes)
        limit = page_limit(max_items)
        names = sorted(n for n, versions in self.layers.items() if matching(versions, runtime, architecture))
        start = 0
        if marker:
            after = decode_marker(marker)
            start = next((i for i, n in enumerate(names) if n > after), len(names))
        page = names[start : start + limit]
        out: dict = {
            "Layers": [
                {
                    "LayerName": n,
                    "LayerArn": self.layer_arn(n),
                    "LatestMatchingVersion": self._list_item(matching(self.layers[n], runtime, architecture)[0]),
                }
                for n in page
            ]
        }
        if start + limit < len(names):
            out["NextMarker"] = encode_marker(page[-1])
        return out

    def list_versions(self, ref: object, runtime: str | None, architecture: str | None, marker: str | None, max_items: str | None) -> dict:
        name = self._name(ref)
        check_filters(runtime, architecture, self._runtimes)
        limit = page_limit(max_items)
        # Newest first, as AWS lists them; a layer with no versions lists none.
        versions = matching(self.layers.get(name, {}), runtime, architecture)
        start = 0
        if marker:
            try:
                after = int(decode_marker(marker))
            except ValueError:
                raise invalid("Invalid marker.") from None
            start = next((i for i, r in enumerate(versions) if r.version < after), len(versions))
        page = versions[start : start + limit]
        out: dict = {"LayerVersions": [self._list_item(r) for r in page]}
        if start + limit < len(versions):
            out["NextMarker"] = encode_marker(str(page[-1].version))
        return out

    async def delete(self, ref: object, version: object) -> None:
        """Idempotent, as on AWS: deleting a version that is not there succeeds."""
        name = self._name(ref)
        number = version_number(version)
        async with self._lock:
            rec = self.layers.get(name, {}).get(number)
            if rec is None:
                return
            async with self._db:
                await trio.to_thread.run_sync(self.storage.delete_layer_version, name, number)
            del self.layers[name][number]
            if not self.layers[name]:
                del self.layers[name]
            self._on_version_deleted(name, number)
            # Kept while a function still names it (its record carries the digest).
            self._on_code_unneeded(rec.code_sha256_hex)

    # -- permissions -------------------------------------------------------------

    async def add_permission(self, ref: object, version: object, body: dict, revision_id: str | None) -> dict:
        req = layer_policy.permission_request(body)
        async with self._lock:
            rec = self._find(ref, version)
            layer_policy.check_revision(rec, revision_id)
            statement = layer_policy.grant(req, self.version_arn(rec.name, rec.version))
            rec = await self._save_policy(rec, layer_policy.with_statement(rec.statements, statement))
        return {"Statement": layer_policy.statement_text(statement), "RevisionId": rec.policy_revision}

    async def remove_permission(self, ref: object, version: object, sid: str, revision_id: str | None) -> None:
        async with self._lock:
            rec = self._find(ref, version)
            layer_policy.check_revision(rec, revision_id)
            await self._save_policy(rec, layer_policy.without_statement(rec.statements, sid))

    def get_policy(self, ref: object, version: object) -> dict:
        rec = self._find(ref, version)
        if not rec.statements:
            raise LambdaError("ResourceNotFoundException", "No policy is associated with the given resource.")
        return {"Policy": layer_policy.policy_text(rec.statements), "RevisionId": rec.policy_revision}

    # -- helpers -------------------------------------------------------------------

    async def _save_policy(self, rec: LayerVersionRecord, statements: list[dict]) -> LayerVersionRecord:
        new = msgspec.structs.replace(rec, statements=statements, policy_revision=str(uuid.uuid4()) if statements else "")
        async with self._db:
            await trio.to_thread.run_sync(self.storage.put_layer_version, new, self.last_version[rec.name])
        self.layers[rec.name][rec.version] = new
        return new

    def _version_doc(self, rec: LayerVersionRecord, code_url: Callable[[LayerVersionRecord], str]) -> dict:
        doc = {
            "Content": {"Location": code_url(rec), "CodeSha256": rec.code_sha256_b64, "CodeSize": rec.code_size},
            "LayerArn": self.layer_arn(rec.name),
            "LayerVersionArn": self.version_arn(rec.name, rec.version),
            "Description": rec.description,
            "CreatedDate": rec.created_date,
            "Version": rec.version,
        }
        if rec.compatible_runtimes:
            doc["CompatibleRuntimes"] = list(rec.compatible_runtimes)
        if rec.compatible_architectures:
            doc["CompatibleArchitectures"] = list(rec.compatible_architectures)
        if rec.license_info is not None:
            doc["LicenseInfo"] = rec.license_info
        return doc

    def _list_item(self, rec: LayerVersionRecord) -> dict:
        item = {
            "LayerVersionArn": self.version_arn(rec.name, rec.version),
            "Version": rec.version,
            "Description": rec.description,
            "CreatedDate": rec.created_date,
        }
        if rec.compatible_runtimes:
            item["CompatibleRuntimes"] = list(rec.compatible_runtimes)
        if rec.compatible_architectures:
            item["CompatibleArchitectures"] = list(rec.compatible_architectures)
        if rec.license_info is not None:
            item["LicenseInfo"] = rec.license_info
        return item
