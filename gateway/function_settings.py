"""Function URL configs and reserved concurrency: per-function settings that
leave the code, the configuration and RevisionId untouched."""
from __future__ import annotations

import datetime
import secrets
import string

import msgspec
import trio

from . import validation as v
from .errors import LambdaError, invalid
from .functions import FunctionService
from .model import FunctionRecord
from .validation import NETWORK_TAG, validate_tags


_URL_ALPHABET = string.ascii_lowercase + string.digits
AUTH_TYPES = ("NONE", "AWS_IAM")
INVOKE_MODES = ("BUFFERED", "RESPONSE_STREAM")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _cors(value: object) -> dict:
    if not isinstance(value, dict):
        raise invalid("Cors must be an object")
    out: dict = {}
    for key in ("AllowHeaders", "AllowMethods", "AllowOrigins", "ExposeHeaders"):
        if key in value:
            items = value[key]
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items) or len(items) > 100:
                raise invalid(f"Cors.{key} must be a list of at most 100 strings")
            out[key] = list(items)
    if "AllowMethods" in out:
        allowed = {"GET", "PUT", "HEAD", "POST", "PATCH", "DELETE", "*"}
        bad = [m for m in out["AllowMethods"] if m.upper() not in allowed]
        if bad or len(out["AllowMethods"]) > 6:
            raise invalid(f"1 validation error detected: Value '{bad}' at 'cors.allowMethods' failed to satisfy constraint")
    if "AllowCredentials" in value:
        if not isinstance(value["AllowCredentials"], bool):
            raise invalid("Cors.AllowCredentials must be a boolean")
        out["AllowCredentials"] = value["AllowCredentials"]
    if "MaxAge" in value:
        out["MaxAge"] = v.int_range(value["MaxAge"], "cors.maxAge", 0, 86400)
    return out


class FunctionSettings:
    def __init__(self, service: FunctionService, base_url: str, on_reserved_change=lambda total: None) -> None:
        self.service = service
        self._on_reserved_change = on_reserved_change
        self.base_url = base_url.rstrip("/")
        self.by_url_id: dict[str, str] = {
            r.url_config["UrlId"]: r.name for r in service.registry.values() if r.url_config
        }

    # -- function URLs -----------------------------------------------------

    def url_for(self, url_id: str) -> str:
        return f"{self.base_url}/lambda-url/{url_id}/"

    def forget(self, name: str) -> None:
        """A deleted function's URL ids go with it (they are never reused)."""
        for url_id in [u for u, n in self.by_url_id.items() if n == name and name not in self.service.registry]:
            del self.by_url_id[url_id]

    def lookup_url(self, url_id: str) -> FunctionRecord | None:
        name = self.by_url_id.get(url_id)
        rec = self.service.registry.get(name) if name else None
        # A deleted and re-created function keeps its name but not its URL.
        if rec is None or not rec.url_config or rec.url_config["UrlId"] != url_id:
            return None
        return rec

    def _url_doc(self, rec: FunctionRecord, with_modified: bool = True) -> dict:
        cfg = rec.url_config or {}
        doc = {
            "FunctionUrl": self.url_for(cfg["UrlId"]),
            "FunctionArn": self.service.arn(rec.name),
            "AuthType": cfg["AuthType"],
            "CreationTime": cfg["CreationTime"],
            "InvokeMode": cfg.get("InvokeMode", "BUFFERED"),
        }
        if cfg.get("Cors"):
            doc["Cors"] = cfg["Cors"]
        if with_modified:
            doc["LastModifiedTime"] = cfg.get("LastModifiedTime", cfg["CreationTime"])
        return doc

    def _check_qualifier(self, rec: FunctionRecord, qualifier: str | None) -> None:
        if qualifier not in (None, "$LATEST"):
            raise LambdaError("ResourceNotFoundException", f"Function not found: {self.service.arn(rec.name, qualifier)}")
        if qualifier == "$LATEST":
            raise invalid("1 validation error detected: Value '$LATEST' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: ((?!^\\d+$)^[0-9a-zA-Z-_]+$)")

    @staticmethod
    def _auth_type(body: dict) -> str:
        auth = body.get("AuthType")
        if auth not in AUTH_TYPES:
            raise invalid(f"1 validation error detected: Value '{auth}' at 'authType' failed to satisfy constraint: Member must satisfy enum value set: [AWS_IAM, NONE]")
        return auth

    @staticmethod
    def _invoke_mode(body: dict) -> str:
        mode = body.get("InvokeMode", "BUFFERED")
        if mode not in INVOKE_MODES:
            raise invalid(f"1 validation error detected: Value '{mode}' at 'invokeMode' failed to satisfy constraint: Member must satisfy enum value set: [BUFFERED, RESPONSE_STREAM]")
        return mode

    async def create_url(self, ref: str, qualifier: str | None, body: dict) -> dict:
        rec = self.service.resolve(ref)
        self._check_qualifier(rec, qualifier)
        auth = self._auth_type(body)
        mode = self._invoke_mode(body)
        cors = _cors(body["Cors"]) if "Cors" in body else None
        if rec.url_config:
            raise LambdaError("ResourceConflictException", f"Failed to create function url config for [functionArn = {self.service.arn(rec.name)}]. Error message:  FunctionUrlConfig exists for this Lambda function")
        now = _now()
        url_id = "".join(secrets.choice(_URL_ALPHABET) for _ in range(32))
        config = {"UrlId": url_id, "AuthType": auth, "InvokeMode": mode, "CreationTime": now, "LastModifiedTime": now}
        if cors:
            config["Cors"] = cors
        rec = await self._save(rec, url_config=config)
        self.by_url_id[url_id] = rec.name
        return self._url_doc(rec, with_modified=False)

    def get_url(self, ref: str, qualifier: str | None) -> dict:
        rec = self.service.resolve(ref)
        self._check_qualifier(rec, qualifier)
        if not rec.url_config:
            raise LambdaError("ResourceNotFoundException", "The resource you requested does not exist.")
        return self._url_doc(rec)

    async def update_url(self, ref: str, qualifier: str | None, body: dict) -> dict:
        rec = self.service.resolve(ref)
        self._check_qualifier(rec, qualifier)
        if not rec.url_config:
            raise LambdaError("ResourceNotFoundException", "The resource you requested does not exist.")
        config = dict(rec.url_config)
        if "AuthType" in body:
            config["AuthType"] = self._auth_type(body)
        if "InvokeMode" in body:
            config["InvokeMode"] = self._invoke_mode(body)
        if "Cors" in body:
            config["Cors"] = _cors(body["Cors"])
        config["LastModifiedTime"] = _now()
        rec = await self._save(rec, url_config=config)
        return self._url_doc(rec)

    async def delete_url(self, ref: str, qualifier: str | None) -> None:
        rec = self.service.resolve(ref)
        self._check_qualifier(rec, qualifier)
        if not rec.url_config:
            raise LambdaError("ResourceNotFoundException", "The resource you requested does not exist.")
        self.by_url_id.pop(rec.url_config["UrlId"], None)
        await self._save(rec, url_config=None)

    def list_urls(self, ref: str) -> dict:
        rec = self.service.resolve(ref)
        return {"FunctionUrlConfigs": [self._url_doc(rec)] if rec.url_config else []}

    # -- tags --------------------------------------------------------------

    def _tagged(self, resource: str) -> FunctionRecord:
        # Tags belong to the function: a qualified ARN is refused, as on AWS.
        name, qualifier = v.function_ref(resource)
        if qualifier is not None:
            raise invalid("Tags apply to a function, not to a version or alias: use the unqualified function ARN.")
        return self.service.resolve(name)

    def list_tags(self, resource: str) -> dict:
        return {"Tags": dict(self._tagged(resource).tags)}

    async def tag(self, resource: str, body: dict) -> None:
        rec = self._tagged(resource)
        tags = body.get("Tags")
        if not isinstance(tags, dict) or not tags:
            raise invalid("Tags must be a non-empty map of strings")
        await self._set_tags(rec, {**rec.tags, **validate_tags(tags)})

    async def untag(self, resource: str, keys: list[str]) -> None:
        rec = self._tagged(resource)
        if not keys:
            raise invalid("TagKeys is required")
        await self._set_tags(rec, {k: val for k, val in rec.tags.items() if k not in keys})

    async def _set_tags(self, rec: FunctionRecord, tags: dict[str, str]) -> None:
        if tags.get(NETWORK_TAG, "none") != rec.tags.get(NETWORK_TAG, "none"):
            # The network is part of how an instance is built: a change is a
            # new revision, so running instances are replaced.
            async with self.service._lock:
                current = self.service.registry[rec.name]
                await self.service._persist(msgspec.structs.replace(current, tags=tags))
            return
        await self._save(rec, tags=tags)

    # -- reserved concurrency ----------------------------------------------

    async def put_concurrency(self, ref: str, body: dict) -> dict:
        rec = self.service.resolve(ref)
        value = body.get("ReservedConcurrentExecutions")
        limit = self.service.concurrency_limit
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise invalid(f"1 validation error detected: Value '{value}' at 'reservedConcurrentExecutions' failed to satisfy constraint: Member must have value greater than or equal to 0")
        others = sum(r.reserved_concurrency or 0 for r in self.service.registry.values() if r.name != rec.name)
        # AWS keeps 100 unreserved for everyone else; on a small host we keep
        # the same rule scaled down, so reserving cannot starve other functions.
        floor = min(100, limit // 10)
        if others + value > limit - floor:
            raise invalid(
                f"Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{floor}]."
            )
        await self._save(rec, reserved_concurrency=value)
        self._on_reserved_change(self.service.reserved_total())
        return {"ReservedConcurrentExecutions": value}

    def get_concurrency(self, ref: str) -> dict:
        rec = self.service.resolve(ref)
        return {} if rec.reserved_concurrency is None else {"ReservedConcurrentExecutions": rec.reserved_concurrency}

    async def delete_concurrency(self, ref: str) -> None:
        rec = self.service.resolve(ref)
        await self._save(rec, reserved_concurrency=None)
        self._on_reserved_change(self.service.reserved_total())

    async def _save(self, rec: FunctionRecord, **changes) -> FunctionRecord:
        async with self.service._lock:
            current = self.service.registry.get(rec.name)
            if current is None:
                raise LambdaError("ResourceNotFoundException", f"Function not found: {self.service.arn(rec.name)}")
            new = msgspec.structs.replace(current, **changes)
            async with self.service._db:
                await trio.to_thread.run_sync(self.service.storage.put_function, new)
            self.service.registry[new.name] = new
        return new
