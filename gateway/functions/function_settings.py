"""Function URL configs and reserved concurrency: per-function settings that
leave the code, the configuration and RevisionId untouched."""

from __future__ import annotations

import datetime
import secrets
import string
from typing import TYPE_CHECKING

import msgspec
import trio

from .. import lambda_model
from ..errors import LambdaError, invalid, not_found
from . import FunctionService, constraints, policy
from .model import FunctionRecord
from .validation import NETWORK_TAG, validate_tags

if TYPE_CHECKING:
    from .code_signing import CodeSigning


_URL_ALPHABET = string.ascii_lowercase + string.digits
# AWS's words for a missing function or alias (create, update, list) and for
# a missing URL config (get, delete, and update's own miss).
_NO_FUNCTION = "Function does not exist"
_NO_RESOURCE = "The resource you requested does not exist."
_METHODS = frozenset({"GET", "PUT", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS", "*"})


class UrlTarget(msgspec.Struct, frozen=True):
    """What a function URL reaches."""

    config: dict  # {"UrlId", "AuthType", "Cors", "InvokeMode", ...}
    record: FunctionRecord  # the version that runs the call
    # AuthType NONE: whether the resource policy lets anyone call it (AWS's
    # rule, functions/policy.py); AWS_IAM URLs are for this account's keys.
    public: bool


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _cors(value: dict) -> dict:
    """A URL's CORS settings (their types and sizes were checked against the
    model); methods must be HTTP methods, as AWS requires."""
    out = {
        k: value[k] for k in ("AllowCredentials", "AllowHeaders", "AllowMethods", "AllowOrigins", "ExposeHeaders", "MaxAge") if k in value
    }
    bad = [m for m in out.get("AllowMethods", ()) if m.upper() not in _METHODS]
    if bad:
        raise invalid(f"Invalid CORS method(s): {', '.join(bad)}. Allowed methods are {', '.join(sorted(_METHODS))}.")
    return out


class FunctionSettings:
    def __init__(self, service: FunctionService, base_url: str, on_reserved_change=lambda total: None, code_signing=None) -> None:
        self.service = service
        self._on_reserved_change = on_reserved_change
        self.base_url = base_url.rstrip("/")
        # url id -> function name, and -> alias for a URL of an alias
        self.by_url_id: dict[str, str] = {}
        self._url_alias: dict[str, str] = {}
        self._public_cache: dict[str, tuple[list[dict] | None, bool]] = {}
        # Code signing configs are taggable too.
        self.code_signing: CodeSigning | None = code_signing
        for rec in service.registry.values():
            if rec.url_config:
                self.by_url_id[rec.url_config["UrlId"]] = rec.name
            for alias, config in rec.alias_urls.items():
                self.by_url_id[config["UrlId"]] = rec.name
                self._url_alias[config["UrlId"]] = alias

    # -- function URLs -----------------------------------------------------
    #
    # A URL belongs to the function (unqualified, running $LATEST) or to one
    # of its aliases; AWS allows no URL on $LATEST by name or on a version.

    def url_for(self, url_id: str) -> str:
        return f"{self.base_url}/lambda-url/{url_id}/"

    def forget(self, name: str) -> None:
        """A deleted function's URL ids go with it (they are never reused)."""
        for url_id in [u for u, n in self.by_url_id.items() if n == name and name not in self.service.registry]:
            del self.by_url_id[url_id]
            self._url_alias.pop(url_id, None)
            self._public_cache.pop(url_id, None)

    def lookup_url(self, url_id: str) -> UrlTarget | None:
        """What a request to a URL reaches: its config, the record that
        runs (an alias's version is picked now, by its weights) and
        whether its policy lets anyone call it."""
        name = self.by_url_id.get(url_id)
        latest = self.service.registry.get(name) if name else None
        if latest is None:
            return None
        alias = self._url_alias.get(url_id)
        config = latest.url_config if alias is None else latest.alias_urls.get(alias)
        # A deleted and re-created function keeps its name but not its URL.
        if not config or config["UrlId"] != url_id:
            return None
        record = latest if alias is None else self.service.resolve(latest.name, alias)
        return UrlTarget(config, record, self._public(url_id, latest.policies.get(alias or "")))

    def _public(self, url_id: str, statements: list[dict] | None) -> bool:
        # Statements lists are replaced, never changed in place, so the
        # answer holds as long as the same list is the policy.
        cached = self._public_cache.get(url_id)
        if cached is not None and cached[0] is statements:
            return cached[1]
        name = self.by_url_id[url_id]
        answer = (
            statements is not None
            and bool(statements)
            and policy.public_url_allowed(statements, self.service.arn(name, self._url_alias.get(url_id)))
        )
        self._public_cache[url_id] = (statements, answer)
        return answer

    def _url_doc(self, name: str, alias: str | None, cfg: dict, with_modified: bool = True) -> dict:
        doc = {
            "FunctionUrl": self.url_for(cfg["UrlId"]),
            "FunctionArn": self.service.arn(name, alias),
            "AuthType": cfg["AuthType"],
            "CreationTime": cfg["CreationTime"],
            "InvokeMode": cfg.get("InvokeMode", "BUFFERED"),
        }
        if cfg.get("Cors"):
            doc["Cors"] = cfg["Cors"]
        if with_modified:
            doc["LastModifiedTime"] = cfg.get("LastModifiedTime", cfg["CreationTime"])
        return doc

    def _url_owner(self, ref: str, qualifier: str | None, missing: str) -> tuple[FunctionRecord, str | None]:
        """$LATEST and the alias (None: the function itself) a URL call
        names; missing: AWS's words when either does not exist (they differ
        between operations)."""
        name, alias = self.service.qualified(ref, qualifier)
        if alias is not None and (alias == "$LATEST" or alias.isdigit()):
            # Only a qualifier derived from the name gets here: the
            # Qualifier parameter broke the model's pattern already.
            raise LambdaError(
                "ValidationException",
                constraints.message(
                    [
                        f"Value '{alias}' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: "
                        + lambda_model.shapes()["FunctionUrlQualifier"]["pattern"]
                    ]
                ),
            )
        latest = self.service.registry.get(name)
        if latest is None or (alias is not None and alias not in latest.aliases):
            raise LambdaError("ResourceNotFoundException", missing)
        return latest, alias

    @staticmethod
    def _url_config(latest: FunctionRecord, alias: str | None) -> dict | None:
        return latest.url_config if alias is None else latest.alias_urls.get(alias)

    async def _set_url_config(self, latest: FunctionRecord, alias: str | None, config: dict | None) -> FunctionRecord:
        if alias is None:
            return await self._save(latest, url_config=config)
        urls = {k: c for k, c in latest.alias_urls.items() if k != alias}
        if config is not None:
            urls[alias] = config
        return await self._save(latest, alias_urls=urls)

    async def create_url(self, ref: str, qualifier: str | None, body: dict) -> dict:
        constraints.check_input("CreateFunctionUrlConfig", body, FunctionName=ref, Qualifier=qualifier)
        latest, alias = self._url_owner(ref, qualifier, _NO_FUNCTION)
        cors = _cors(body["Cors"]) if "Cors" in body else None
        if self._url_config(latest, alias):
            raise LambdaError(
                "ResourceConflictException",
                f"Failed to create function url config for [functionArn = {self.service.arn(latest.name, alias)}]. Error message:  FunctionUrlConfig exists for this Lambda function",
            )
        now = _now()
        url_id = "".join(secrets.choice(_URL_ALPHABET) for _ in range(32))
        config = {
            "UrlId": url_id,
            "AuthType": body["AuthType"],
            "InvokeMode": body.get("InvokeMode", "BUFFERED"),
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        if cors:
            config["Cors"] = cors
        await self._set_url_config(latest, alias, config)
        self.by_url_id[url_id] = latest.name
        if alias is not None:
            self._url_alias[url_id] = alias
        return self._url_doc(latest.name, alias, config, with_modified=False)

    def get_url(self, ref: str, qualifier: str | None) -> dict:
        latest, alias = self._url_owner(ref, qualifier, _NO_RESOURCE)
        config = self._url_config(latest, alias)
        if not config:
            raise LambdaError("ResourceNotFoundException", _NO_RESOURCE)
        return self._url_doc(latest.name, alias, config)

    async def update_url(self, ref: str, qualifier: str | None, body: dict) -> dict:
        constraints.check_input("UpdateFunctionUrlConfig", body, FunctionName=ref, Qualifier=qualifier)
        latest, alias = self._url_owner(ref, qualifier, _NO_FUNCTION)
        config = self._url_config(latest, alias)
        if not config:
            raise LambdaError("ResourceNotFoundException", _NO_RESOURCE)
        config = dict(config)
        for key in ("AuthType", "InvokeMode"):
            if key in body:
                config[key] = body[key]
        if "Cors" in body:
            config["Cors"] = _cors(body["Cors"])
        config["LastModifiedTime"] = _now()
        await self._set_url_config(latest, alias, config)
        return self._url_doc(latest.name, alias, config)

    async def delete_url(self, ref: str, qualifier: str | None) -> None:
        latest, alias = self._url_owner(ref, qualifier, _NO_RESOURCE)
        config = self._url_config(latest, alias)
        if not config:
            raise LambdaError("ResourceNotFoundException", _NO_RESOURCE)
        self.by_url_id.pop(config["UrlId"], None)
        self._url_alias.pop(config["UrlId"], None)
        await self._set_url_config(latest, alias, None)

    def list_urls(self, ref: str) -> dict:
        latest = self.service.latest(ref, missing=lambda _name: LambdaError("ResourceNotFoundException", _NO_FUNCTION))
        docs = [self._url_doc(latest.name, None, latest.url_config)] if latest.url_config else []
        docs += [self._url_doc(latest.name, a, c) for a, c in sorted(latest.alias_urls.items())]
        return {"FunctionUrlConfigs": docs}

    # -- tags --------------------------------------------------------------

    def _tagged(self, resource: str) -> FunctionRecord:
        # Tags belong to the function: a qualified ARN is refused, as on AWS.
        name, qualifier = self.service.parse(resource)
        if qualifier is not None:
            raise invalid("Tags on function aliases and versions are not supported. Please specify a function ARN.")
        return self.service.latest(name)

    def _config(self, resource: str):
        """The code signing config a tag operation names, or None when it
        names a function."""
        return self.code_signing if self.code_signing is not None and ":code-signing-config:" in resource else None

    def list_tags(self, resource: str) -> dict:
        configs = self._config(resource)
        if configs is not None:
            return {"Tags": configs.tags(resource)}
        return {"Tags": dict(self._tagged(resource).tags)}

    async def tag(self, resource: str, body: dict) -> None:
        constraints.check_input("TagResource", body, Resource=resource)
        configs = self._config(resource)
        current = configs.tags(resource) if configs is not None else None
        rec = self._tagged(resource) if configs is None else None
        tags = body["Tags"]
        if not tags:
            raise invalid("An error occurred and the request cannot be processed.")
        existing = (current if rec is None else rec.tags) or {}
        merged = {**existing, **validate_tags(tags, existing)}
        if configs is not None:
            await configs.set_tags(resource, merged)
            return
        assert rec is not None  # _tagged() raises for an unknown resource
        await self._set_tags(rec, merged)

    async def untag(self, resource: str, keys: list[str]) -> None:
        constraints.check_input("UntagResource", Resource=resource, TagKeys=keys or None)
        configs = self._config(resource)
        if configs is not None:
            await configs.set_tags(resource, {k: val for k, val in configs.tags(resource).items() if k not in keys})
            return
        rec = self._tagged(resource)
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

    def _unqualified(self, ref: str, *, latest_in_message: bool = False) -> FunctionRecord:
        name, qualifier = self.service.parse(ref)
        if qualifier is not None:
            raise invalid(
                "This operation is permitted on Lambda functions only. Aliases and versions do not support this operation. "
                "Please specify either a function name or an unqualified function ARN."
            )
        # PutFunctionConcurrency names the missing function with :$LATEST.
        return self.service.latest(name, missing=lambda n: not_found(self.service.arn(n, "$LATEST" if latest_in_message else None)))

    async def put_concurrency(self, ref: str, body: dict) -> dict:
        constraints.check_input("PutFunctionConcurrency", body, FunctionName=ref)
        rec = self._unqualified(ref, latest_in_message=True)
        value = body["ReservedConcurrentExecutions"]  # at least 0, by the model
        limit = self.service.concurrency_limit
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
        rec = self._unqualified(ref)
        return {} if rec.reserved_concurrency is None else {"ReservedConcurrentExecutions": rec.reserved_concurrency}

    async def delete_concurrency(self, ref: str) -> None:
        rec = self._unqualified(ref)
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
