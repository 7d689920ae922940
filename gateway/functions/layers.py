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
document, or raises LambdaError, like functions.py.
"""
from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
import uuid
from collections.abc import Callable, Iterable

import msgspec
import trio

from ..errors import LambdaError, invalid
from .codestore import CodeError, CodeStore

LAYER_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,140}$")
# LayerName in a path: a name, or a layer's ARN (botocore's LayerName pattern).
LAYER_REF_RE = re.compile(
    r"^(?:arn:(?:aws[a-zA-Z-]*)?:lambda:(?P<region>(?:eusc-)?[a-z]{2}(?:(?:-gov)|(?:-iso[a-z]?))?-[a-z]+-\d):"
    r"(?P<account>\d{12}):layer:)?(?P<name>[a-zA-Z0-9_-]+)$")
LAYER_VERSION_ARN_RE = re.compile(
    r"^arn:(?:aws[a-zA-Z-]*)?:lambda:(?P<region>(?:eusc-)?[a-z]{2}(?:(?:-gov)|(?:-iso[a-z]?))?-[a-z]+-\d):"
    r"(?P<account>\d{12}):layer:(?P<name>[a-zA-Z0-9_-]+):(?P<version>[0-9]+)$")
_VERSION_ARN_PATTERN = (r"(arn:(aws[a-zA-Z-]*)?:lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:layer:"
                        r"[a-zA-Z0-9-_]+:[0-9]+)|(arn:[a-zA-Z0-9-]+:lambda:::awslayer:[a-zA-Z0-9-_]+)")
STATEMENT_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,100}$")
PRINCIPAL_RE = re.compile(r"^(?:\d{12}|\*|arn:aws[a-zA-Z-]*:iam::\d{12}:root)$")
ORGANIZATION_RE = re.compile(r"^o-[a-z0-9]{10,32}$")

MAX_FUNCTION_LAYERS = 5
MAX_COMPATIBLE_RUNTIMES = 15
ARCHITECTURES = ("x86_64", "arm64")
POLICY_MAX_BYTES = 20_480  # AWS's limit on a resource policy's size
ZIP_MAX = 52_428_800  # a direct upload's limit (CodeSizeZipped), as for a function's code


class LayerVersionRecord(msgspec.Struct, kw_only=True):
    name: str
    version: int
    description: str = ""
    created_date: str
    compatible_runtimes: list[str] = []
    compatible_architectures: list[str] = []
    license_info: str | None = None
    code_sha256_hex: str
    code_sha256_b64: str
    code_size: int
    unzipped_size: int
    statements: list[dict] = []  # AddLayerVersionPermission's, in order
    policy_revision: str = ""


class LayerRef(msgspec.Struct, frozen=True):
    """A layer version as a function names it: the ARN it was given and,
    fixed at that moment, the content it mounts (a deleted version keeps
    working for the functions that had it)."""

    arn: str
    code_size: int
    sha256_hex: str
    unzipped_size: int


def _now_iso() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def _not_found() -> LambdaError:
    # AWS's words for a layer or version that does not exist.
    return LambdaError("ResourceNotFoundException", "The resource you requested does not exist.")


def _pattern_error(value: object, field: str, pattern: str) -> LambdaError:
    return invalid(f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: "
                   f"Member must satisfy regular expression pattern: {pattern}")


class LayerService:
    def __init__(self, storage, codes: CodeStore, *, region: str, account: str, lock: trio.Lock,
                 runtimes: Iterable[str], on_code_unneeded: Callable[..., None] = lambda *digests: None,
                 on_version_deleted: Callable[[str, int], None] = lambda name, version: None) -> None:
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
            raise invalid(f"1 validation error detected: Value '{ref}' at 'layerName' failed to satisfy constraint: "
                          "Member must have length less than or equal to 140")
        m = LAYER_REF_RE.match(ref)
        if m is None:
            raise _pattern_error(ref, "layerName", LAYER_REF_RE.pattern[1:-1])
        if m.group("region") is not None and (m.group("region"), m.group("account")) != (self.region, self.account):
            # Another account's or region's layer: nothing of it is here.
            raise _not_found()
        return m.group("name")

    @staticmethod
    def _version(value: object) -> int:
        if isinstance(value, bool):
            raise invalid(f"1 validation error detected: Value '{value}' at 'versionNumber' failed to satisfy constraint: Member must be a number")
        try:
            number = int(value)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise invalid(f"1 validation error detected: Value '{value}' at 'versionNumber' failed to satisfy constraint: Member must be a number") from None
        return number

    def _find(self, ref: object, version: object) -> LayerVersionRecord:
        rec = self.layers.get(self._name(ref), {}).get(self._version(version))
        if rec is None:
            raise _not_found()
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
                raise _pattern_error(arn, "layers", _VERSION_ARN_PATTERN)
            m = LAYER_VERSION_ARN_RE.match(arn)
            assert m is not None
            name = m.group("name")
            if name in seen:
                raise invalid("Two different versions of the same layer are not allowed to be referenced in the same "
                              f"function. {seen[name]} and {arn} reference the same layer.")
            seen[name] = arn
            rec = None
            if (m.group("region"), m.group("account")) == (self.region, self.account):
                rec = self.layers.get(name, {}).get(int(m.group("version")))
            if rec is None:
                raise invalid(f"Layer version {arn} does not exist.")
            refs.append(LayerRef(self.version_arn(rec.name, rec.version), rec.code_size, rec.code_sha256_hex,
                                 rec.unzipped_size))
        return refs

    def referenced_code(self) -> set[str]:
        return {rec.code_sha256_hex for versions in self.layers.values() for rec in versions.values()}

    # -- operations -------------------------------------------------------------

    async def publish(self, ref: object, body: dict, code_url: Callable[[LayerVersionRecord], str]) -> dict:
        name = self._name(ref)
        if not LAYER_NAME_RE.match(name):
            raise _pattern_error(ref, "layerName", "[a-zA-Z0-9-_]+")
        data = self._zip_from(body.get("Content"))
        description = body.get("Description", "")
        if not isinstance(description, str) or len(description) > 256:
            raise invalid("1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 256")
        runtimes = self._compatible_runtimes(body.get("CompatibleRuntimes", []))
        architectures = self._compatible_architectures(body.get("CompatibleArchitectures", []))
        license_info = body.get("LicenseInfo")
        if license_info is not None and (not isinstance(license_info, str) or len(license_info) > 512):
            raise invalid("1 validation error detected: Value at 'licenseInfo' failed to satisfy constraint: Member must have length less than or equal to 512")
        async with self._lock:
            try:
                stored = await trio.to_thread.run_sync(self.codes.put, data)
            except CodeError as exc:
                raise invalid(str(exc)) from None
            # Collected if the record below never commits.
            self._on_code_unneeded(stored.sha256_hex)
            version = self.last_version.get(name, 0) + 1
            rec = LayerVersionRecord(
                name=name, version=version, description=description, created_date=_now_iso(),
                compatible_runtimes=runtimes, compatible_architectures=architectures, license_info=license_info,
                code_sha256_hex=stored.sha256_hex, code_sha256_b64=stored.sha256_b64, code_size=stored.size,
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
            raise _pattern_error(arn, "arn", _VERSION_ARN_PATTERN)
        if (m.group("region"), m.group("account")) != (self.region, self.account):
            raise _not_found()
        return self.get(m.group("name"), m.group("version"), code_url)

    def list_layers(self, runtime: str | None, architecture: str | None, marker: str | None,
                    max_items: str | None) -> dict:
        self._check_filters(runtime, architecture)
        limit = self._limit(max_items)
        names = sorted(n for n, versions in self.layers.items() if self._matching(versions, runtime, architecture))
        start = 0
        if marker:
            after = self._decode_marker(marker)
            start = next((i for i, n in enumerate(names) if n > after), len(names))
        page = names[start:start + limit]
        out: dict = {"Layers": [{
            "LayerName": n,
            "LayerArn": self.layer_arn(n),
            "LatestMatchingVersion": self._list_item(self._matching(self.layers[n], runtime, architecture)[0]),
        } for n in page]}
        if start + limit < len(names):
            out["NextMarker"] = self._encode_marker(page[-1])
        return out

    def list_versions(self, ref: object, runtime: str | None, architecture: str | None, marker: str | None,
                      max_items: str | None) -> dict:
        name = self._name(ref)
        self._check_filters(runtime, architecture)
        limit = self._limit(max_items)
        # Newest first, as AWS lists them; a layer with no versions lists none.
        versions = self._matching(self.layers.get(name, {}), runtime, architecture)
        start = 0
        if marker:
            try:
                after = int(self._decode_marker(marker))
            except ValueError:
                raise invalid("Invalid marker.") from None
            start = next((i for i, r in enumerate(versions) if r.version < after), len(versions))
        page = versions[start:start + limit]
        out: dict = {"LayerVersions": [self._list_item(r) for r in page]}
        if start + limit < len(versions):
            out["NextMarker"] = self._encode_marker(str(page[-1].version))
        return out

    async def delete(self, ref: object, version: object) -> None:
        """Idempotent, as on AWS: deleting a version that is not there succeeds."""
        name = self._name(ref)
        number = self._version(version)
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
        sid = body.get("StatementId")
        if not isinstance(sid, str) or not STATEMENT_ID_RE.match(sid):
            raise _pattern_error(sid, "statementId", "([a-zA-Z0-9-_]+)")
        action = body.get("Action")
        if action != "lambda:GetLayerVersion":
            raise _pattern_error(action, "action", "lambda:GetLayerVersion")
        principal = body.get("Principal")
        if not isinstance(principal, str) or not PRINCIPAL_RE.match(principal):
            raise _pattern_error(principal, "principal", r"\d{12}|\*|arn:(aws[a-zA-Z-]*):iam::\d{12}:root")
        organization = body.get("OrganizationId")
        if organization is not None and (not isinstance(organization, str) or not ORGANIZATION_RE.match(organization)):
            raise _pattern_error(organization, "organizationId", "o-[a-z0-9]{10,32}")
        if organization is not None and principal != "*":
            raise invalid("OrganizationId can only be set when the Principal is '*'.")
        async with self._lock:
            rec = self._find(ref, version)
            self._check_revision(rec, revision_id)
            if any(s["Sid"] == sid for s in rec.statements):
                raise LambdaError("ResourceConflictException",
                                  f"The statement id ({sid}) provided already exists. Please provide a new statement id, "
                                  "or remove the existing statement.")
            statement: dict = {
                "Sid": sid,
                "Effect": "Allow",
                "Principal": "*" if principal == "*" else {"AWS": principal if principal.startswith("arn:") else f"arn:aws:iam::{principal}:root"},
                "Action": action,
                "Resource": self.version_arn(rec.name, rec.version),
            }
            if organization is not None:
                statement["Condition"] = {"StringEquals": {"aws:PrincipalOrgID": organization}}
            statements = [*rec.statements, statement]
            if len(self._policy_text(statements)) > POLICY_MAX_BYTES:
                raise LambdaError("PolicyLengthExceededException", "The final policy size is bigger than the limit.")
            rec = await self._save_policy(rec, statements)
        return {"Statement": json.dumps(statement, separators=(",", ":")), "RevisionId": rec.policy_revision}

    async def remove_permission(self, ref: object, version: object, sid: str, revision_id: str | None) -> None:
        async with self._lock:
            rec = self._find(ref, version)
            self._check_revision(rec, revision_id)
            if not any(s["Sid"] == sid for s in rec.statements):
                raise LambdaError("ResourceNotFoundException", f"Statement {sid} is not found in resource policy.")
            await self._save_policy(rec, [s for s in rec.statements if s["Sid"] != sid])

    def get_policy(self, ref: object, version: object) -> dict:
        rec = self._find(ref, version)
        if not rec.statements:
            raise LambdaError("ResourceNotFoundException", "No policy is associated with the given resource.")
        return {"Policy": self._policy_text(rec.statements), "RevisionId": rec.policy_revision}

    # -- helpers -------------------------------------------------------------------

    @staticmethod
    def _policy_text(statements: list[dict]) -> str:
        return json.dumps({"Version": "2012-10-17", "Id": "default", "Statement": statements}, separators=(",", ":"))

    @staticmethod
    def _check_revision(rec: LayerVersionRecord, revision_id: str | None) -> None:
        if revision_id is not None and revision_id != rec.policy_revision:
            raise LambdaError("PreconditionFailedException",
                              "The RevisionId provided does not match the latest RevisionId for the Lambda function. "
                              "Call the GetLayerVersionPolicy API to retrieve the latest RevisionId for your resource.")

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

    @staticmethod
    def _matching(versions: dict[int, LayerVersionRecord], runtime: str | None,
                  architecture: str | None) -> list[LayerVersionRecord]:
        """Versions that declare the runtime and architecture asked for,
        newest first (a version that declares none matches no filter)."""
        return [versions[n] for n in sorted(versions, reverse=True)
                if (runtime is None or runtime in versions[n].compatible_runtimes)
                and (architecture is None or architecture in versions[n].compatible_architectures)]

    def _check_filters(self, runtime: str | None, architecture: str | None) -> None:
        if runtime is not None and runtime not in self._runtimes:
            raise invalid(f"1 validation error detected: Value '{runtime}' at 'compatibleRuntime' failed to satisfy "
                          f"constraint: Member must satisfy enum value set: [{', '.join(self._runtimes)}]")
        if architecture is not None and architecture not in ARCHITECTURES:
            raise invalid(f"1 validation error detected: Value '{architecture}' at 'compatibleArchitecture' failed to "
                          "satisfy constraint: Member must satisfy enum value set: [x86_64, arm64]")

    def _compatible_runtimes(self, value: object) -> list[str]:
        if not isinstance(value, list) or len(value) > MAX_COMPATIBLE_RUNTIMES:
            raise invalid("1 validation error detected: Value at 'compatibleRuntimes' failed to satisfy constraint: "
                          f"Member must have length less than or equal to {MAX_COMPATIBLE_RUNTIMES}")
        bad = [r for r in value if r not in self._runtimes]
        if bad:
            raise invalid(f"1 validation error detected: Value '{bad}' at 'compatibleRuntimes' failed to satisfy "
                          f"constraint: Member must satisfy constraint: [Member must satisfy enum value set: "
                          f"[{', '.join(self._runtimes)}]]")
        return list(dict.fromkeys(value))

    @staticmethod
    def _compatible_architectures(value: object) -> list[str]:
        if not isinstance(value, list) or len(value) > 2 or any(a not in ARCHITECTURES for a in value):
            raise invalid(f"1 validation error detected: Value '{value}' at 'compatibleArchitectures' failed to satisfy "
                          "constraint: Member must have length less than or equal to 2, and Member must satisfy "
                          "constraint: [Member must satisfy enum value set: [x86_64, arm64]]")
        return list(dict.fromkeys(value))

    @staticmethod
    def _limit(max_items: str | None) -> int:
        if max_items is None:
            return 50
        try:
            limit = int(max_items)
        except ValueError:
            raise invalid(f"Value '{max_items}' at 'maxItems' failed to satisfy constraint: Member must be a number") from None
        if not 1 <= limit <= 50:
            raise invalid(f"1 validation error detected: Value '{limit}' at 'maxItems' failed to satisfy constraint: "
                          "Member must have value between 1 and 50")
        return limit

    @staticmethod
    def _encode_marker(value: str) -> str:
        return base64.urlsafe_b64encode(value.encode()).decode()

    @staticmethod
    def _decode_marker(marker: str) -> str:
        try:
            return base64.urlsafe_b64decode(marker.encode()).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise invalid("Invalid marker.") from None

    @staticmethod
    def _zip_from(content: object) -> bytes:
        if not isinstance(content, dict):
            raise invalid("1 validation error detected: Value null at 'content' failed to satisfy constraint: Member must not be null")
        if "ZipFile" not in content:
            if content.get("S3Bucket") or content.get("S3Key"):
                raise invalid("Content.S3Bucket is not supported by this server yet; upload the .zip as Content.ZipFile.")
            raise invalid("Please provide a source for layer content: Content.ZipFile.")
        raw = content["ZipFile"]
        if not isinstance(raw, str):
            raise invalid("Content.ZipFile must be base64-encoded bytes")
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise invalid("Could not unzip uploaded file. Please check your file, then try to upload again.") from None
        if len(data) > ZIP_MAX:
            raise LambdaError("RequestTooLargeException",
                              f"Request must be smaller than {ZIP_MAX} bytes for the PublishLayerVersion operation")
        return data
