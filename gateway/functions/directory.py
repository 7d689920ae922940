"""FunctionDirectory: the functions this server holds, read side only.

A FunctionName (a name, a partial or full ARN, with or without a
qualifier) resolves here to the record that serves it: $LATEST, a
published version, or an alias's version, picked by the alias's weights.
The directory also answers what the records imply: their wire
configuration, the runtime version they run on, the code they keep alive.
FunctionService (service.py) extends it with the operations that change
the records.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from ..errors import LambdaError, invalid, not_found
from . import validation as v
from .layers import LayerService
from .model import FunctionRecord, configuration, function_arn
from .runtimes import RuntimeCatalog

_PARSED_MAX = 1024
_PARSED_REF_MAX = 256  # the model's longest FunctionName


class FunctionDirectory:
    def __init__(
        self,
        functions: Iterable[FunctionRecord],
        versions: Iterable[FunctionRecord],
        *,
        region: str,
        account: str,
        runtimes: RuntimeCatalog,
        layers: LayerService | None,
    ) -> None:
        self.region = region
        self.account = account
        self.runtimes = runtimes
        self.layers = layers
        self.registry: dict[str, FunctionRecord] = {r.name: r for r in functions}
        # Published versions: name -> version number (as a string) -> record.
        self.versions: dict[str, dict[str, FunctionRecord]] = {}
        for rec in versions:
            self.versions.setdefault(rec.name, {})[rec.version] = rec
        # FunctionNames parsed before, with what they parsed to: an Invoke
        # names its function on every call, and its pattern (names, partial
        # and full ARNs) was matched twice a call. Only what parsed is kept
        # (a refusal is made afresh), bounded in count and in name length,
        # and emptied when full, like http1's header names.
        self._parsed: dict[str, tuple[str, str | None]] = {}

    def arn(self, name: str, qualifier: str | None = None) -> str:
        return function_arn(self.region, self.account, name, qualifier)

    def parse(self, ref: str) -> tuple[str, str | None]:
        """FunctionName to (name, qualifier). An ARN of another region or
        account is refused as AWS refuses it: another region's functions
        cannot be reached from this one, and another account's are not
        this server's to serve."""
        parsed = self._parsed.get(ref) if type(ref) is str else None
        if parsed is not None:
            return parsed
        name, qualifier = v.function_ref(ref)
        region, account = v.function_scope(ref)
        if region is not None and region != self.region:
            raise LambdaError("ResourceNotFoundException", f"Functions from '{region}' are not reachable in this region ('{self.region}')")
        if account is not None and account != self.account:
            raise LambdaError(
                "AccessDeniedException",
                f"You are not authorized to access {ref}: it belongs to account {account}, and this server serves account {self.account}.",
            )
        if len(ref) <= _PARSED_REF_MAX:
            if len(self._parsed) >= _PARSED_MAX:
                self._parsed.clear()
            self._parsed[ref] = (name, qualifier)
        return name, qualifier

    def qualified(self, ref: str, qualifier: str | None) -> tuple[str, str | None]:
        """(name, qualifier) from a FunctionName that may carry a qualifier
        and a Qualifier parameter that must then agree with it."""
        name, embedded = self.parse(ref)
        qualifier = v.qualifier(qualifier)
        if embedded and qualifier and embedded != qualifier:
            raise invalid("The derived qualifier from the function name does not match the specified qualifier.")
        return name, qualifier or embedded

    def resolve(self, ref: str, qualifier: str | None = None) -> FunctionRecord:
        """FunctionName (+ Qualifier) to the record that serves it."""
        name, qualifier = self.qualified(ref, qualifier)
        rec = self.registry.get(name)
        if rec is None:
            raise not_found(self.arn(name, qualifier))
        if qualifier is None or qualifier == "$LATEST":
            return rec
        if not qualifier.isdigit():
            alias = rec.aliases.get(qualifier)
            if alias is None:
                raise not_found(self.arn(name, qualifier))
            qualifier = pick_version(alias)
            if qualifier == "$LATEST":
                return rec
        version = self.versions.get(name, {}).get(qualifier)
        if version is None:
            raise not_found(self.arn(name, qualifier))
        return version

    def latest(self, ref: str, *, missing: Callable[[str], LambdaError] | None = None) -> FunctionRecord:
        """The $LATEST record a FunctionName names (its qualifier, if any,
        is the caller's to judge). missing: the error for a name that
        exists nowhere, by default AWS's "Function not found: <arn>"."""
        name, _ = self.parse(ref)
        rec = self.registry.get(name)
        if rec is None:
            raise (missing or (lambda n: not_found(self.arn(n))))(name)
        return rec

    def configuration(self, rec: FunctionRecord, *, listed: bool = False, qualify_latest: bool = False) -> dict:
        return configuration(
            rec, self.region, self.account, runtime_version_arn=self.runtime_version_arn(rec), listed=listed, qualify_latest=qualify_latest
        )

    def runtime_version_arn(self, rec: FunctionRecord) -> str | None:
        """The runtime version a function runs on here; None when this
        server (as started) cannot run its Runtime."""
        resolved = self.runtimes.resolve(rec.runtime)
        return resolved.version_arn(self.region) if resolved is not None else None

    def referenced_code(self) -> set[str]:
        """Digests of the code every durable record names: $LATEST and each
        published version. Equal to what lambdalet.db names whenever the
        service's lock is free, since each change commits before the
        registry changes."""
        out = {rec.code_sha256_hex for rec in self.registry.values()}
        for versions in self.versions.values():
            out.update(rec.code_sha256_hex for rec in versions.values())
        # A layer's content: while a version of it exists, and while any
        # function or published version names it (even once deleted).
        for rec in self.registry.values():
            out.update(layer.sha256_hex for layer in rec.layers)
        for versions in self.versions.values():
            out.update(layer.sha256_hex for rec in versions.values() for layer in rec.layers)
        if self.layers is not None:
            out |= self.layers.referenced_code()
        return out

    def reserved_total(self) -> int:
        return sum(r.reserved_concurrency or 0 for r in self.registry.values())


def pick_version(alias: dict) -> str:
    """The version an alias sends this call to, honouring its weights."""
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    roll = random.random()
    for version, weight in weights.items():
        if roll < weight:
            return version
        roll -= weight
    return alias["FunctionVersion"]
