"""The seam through which an event source asks whether a function lets it
invoke: a function's resource-based policy (AddPermission) must allow the
service principal (s3.amazonaws.com) to call lambda:InvokeFunction, for
this source (SourceArn: the bucket's ARN) and account (SourceAccount).

S3 asks when a notification configuration is put (a destination that has
not granted it is "Unable to validate") and again when an event is about
to be queued (a permission removed since stops the events, as on AWS).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import Protocol

from .s3.notifications import S3_PRINCIPAL, FunctionConfig


class InvokePolicy(Protocol):
    def allows(
        self, function: str, qualifier: str, *, principal: str, action: str, source_arn: str | None, source_account: str | None
    ) -> bool:
        """Whether the function's (or the qualified version's or alias's)
        resource policy lets ``principal`` perform ``action``."""
        ...


class StatementPolicy:
    """An InvokePolicy over AWS-shaped policy statements (AddPermission's),
    read through ``statements_for(function, qualifier)``: the statements of
    the function's policy ($LATEST) or of a version's or alias's, and the
    ARN they must name as their Resource."""

    def __init__(self, statements_for: Callable[[str, str], tuple[Iterable[dict], str]]) -> None:
        self.statements_for = statements_for

    def allows(
        self, function: str, qualifier: str, *, principal: str, action: str, source_arn: str | None, source_account: str | None
    ) -> bool:
        statements, resource = self.statements_for(function, qualifier)
        context = {}
        if source_arn is not None:
            context["aws:sourcearn"] = source_arn
        if source_account is not None:
            context["aws:sourceaccount"] = source_account
        return any(_statement_allows(s, principal, action, resource, context) for s in statements)


def _names(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _principal_matches(value: object, service: str) -> bool:
    if value == "*":
        return True
    if isinstance(value, dict):
        return service in _names(value.get("Service")) or "*" in _names(value.get("AWS"))
    return False


@functools.lru_cache(maxsize=256)
def _wildcard(pattern: str) -> re.Pattern:
    """IAM's wildcards: * any run of characters, ? one; nothing else is special."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.S)


def _like(have: str, pattern: str) -> bool:
    return _wildcard(pattern).fullmatch(have) is not None


def _action_matches(patterns: object, action: str) -> bool:
    return any(_like(action.lower(), p.lower()) for p in _names(patterns))


# IAM's condition operators that an event source's context can satisfy.
_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda have, want: have == want,
    "StringLike": _like,
    "ArnEquals": lambda have, want: have == want,
    "ArnLike": _like,
}


def _conditions_hold(condition: object, context: dict[str, str]) -> bool:
    if not isinstance(condition, dict):
        return False
    for operator, pairs in condition.items():
        test = _OPERATORS.get(operator)
        if test is None or not isinstance(pairs, dict):
            return False  # an operator this server cannot evaluate grants nothing
        for key, wanted in pairs.items():
            have = context.get(str(key).lower())
            if have is None or not any(test(have, w) for w in _names(wanted)):
                return False
    return True


def _statement_allows(s: dict, service: str, action: str, resource: str, context: dict[str, str]) -> bool:
    return (
        s.get("Effect") == "Allow"
        and _principal_matches(s.get("Principal"), service)
        and _action_matches(s.get("Action"), action)
        and resource in _names(s.get("Resource"))
        and _conditions_hold(s.get("Condition") or {}, context)
    )


_ARN_RE = re.compile(r"arn:aws[a-zA-Z-]*:lambda:([a-z0-9-]+):(\d{12}):function:")


def s3_invoke_check(
    policy: InvokePolicy, exists: Callable[[str, str], bool], *, region: str, account: str
) -> Callable[[FunctionConfig, str], str | None]:
    """``can_invoke(config, bucket)`` for S3: why S3 may not invoke the
    configuration's function for this bucket, or None when it may."""

    def can_invoke(f: FunctionConfig, bucket: str) -> str | None:
        m = _ARN_RE.match(f.arn)
        if m is None or m.group(1) != region or m.group(2) != account:
            return f"Not authorized to invoke function [{f.arn}]"
        if not exists(f.function, f.qualifier):
            return f"Not authorized to invoke function [{f.arn}]"
        if not policy.allows(
            f.function,
            f.qualifier,
            principal=S3_PRINCIPAL,
            action="lambda:InvokeFunction",
            source_arn=f"arn:aws:s3:::{bucket}",
            source_account=account,
        ):
            return f"Not authorized to invoke function [{f.arn}]"
        return None

    return can_invoke
