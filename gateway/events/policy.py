"""The seam through which an event source asks whether a function lets it
invoke: a function's resource-based policy (AddPermission) must allow the
service principal (s3.amazonaws.com) to call lambda:InvokeFunction, for
this source (SourceArn: the bucket's ARN) and account (SourceAccount).

S3 asks when a notification configuration is put (a destination that has
not granted it is "Unable to validate") and again when an event is about
to be queued (a permission removed since stops the events, as on AWS).
"""
from __future__ import annotations

import re
from typing import Callable, Protocol

from .s3.notifications import S3_PRINCIPAL, FunctionConfig


class InvokePolicy(Protocol):
    def allows(self, function: str, qualifier: str, *, principal: str, action: str,
               source_arn: str | None, source_account: str | None) -> bool:
        """Whether the function's (or the qualified version's or alias's)
        resource policy lets ``principal`` perform ``action``."""
        ...


class NoGrants:
    """A policy store with no statements: every service is refused.
    Stands in until resource policies exist, so that S3's validation
    refuses rather than silently allows."""

    def allows(self, function: str, qualifier: str, *, principal: str, action: str,
               source_arn: str | None, source_account: str | None) -> bool:
        return False


_ARN_RE = re.compile(r"arn:aws[a-zA-Z-]*:lambda:([a-z0-9-]+):(\d{12}):function:")


def s3_invoke_check(policy: InvokePolicy, exists: Callable[[str, str], bool], *, region: str,
                    account: str) -> Callable[[FunctionConfig, str], str | None]:
    """``can_invoke(config, bucket)`` for S3: why S3 may not invoke the
    configuration's function for this bucket, or None when it may."""

    def can_invoke(f: FunctionConfig, bucket: str) -> str | None:
        m = _ARN_RE.match(f.arn)
        if m is None or m.group(1) != region or m.group(2) != account:
            return f"Not authorized to invoke function [{f.arn}]"
        if not exists(f.function, f.qualifier):
            return f"Not authorized to invoke function [{f.arn}]"
        if not policy.allows(f.function, f.qualifier, principal=S3_PRINCIPAL, action="lambda:InvokeFunction",
                             source_arn=f"arn:aws:s3:::{bucket}", source_account=account):
            return f"Not authorized to invoke function [{f.arn}]"
        return None

    return can_invoke
