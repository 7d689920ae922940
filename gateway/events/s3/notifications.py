"""Bucket notification configurations, as S3 parses and validates them,
and AWS's S3 event record. Sans-IO.

What a configuration may hold here: LambdaFunctionConfigurations (XML
<CloudFunctionConfiguration>) with events and a key filter. Topic and
queue destinations (SNS, SQS) are refused as destinations S3 could not
validate; EventBridge is not implemented.

Validation follows S3: known event names only; prefix and suffix rules, at
most one of each; no two configurations that share an event type and whose
filters overlap (prefixes where one starts the other, suffixes where one
ends the other); and every destination a function that exists in this
region and account and whose resource policy lets s3.amazonaws.com invoke
it for this bucket (checked by the caller through ``can_invoke``).
"""

from __future__ import annotations

import base64
import datetime
import re
import urllib.parse
import uuid
from collections.abc import Callable

import msgspec

from .errors import S3Error
from .xmlsafe import Node

S3_PRINCIPAL = "s3.amazonaws.com"
MAX_CONFIGURATIONS = 1000

# Every event type S3 accepts in a configuration. Those this store never
# causes (restores, replication, lifecycle, tagging, ACLs) are accepted, as
# S3 accepts them, and simply never fire.
EVENT_TYPES = frozenset(
    {
        "s3:ObjectCreated:*",
        "s3:ObjectCreated:Put",
        "s3:ObjectCreated:Post",
        "s3:ObjectCreated:Copy",
        "s3:ObjectCreated:CompleteMultipartUpload",
        "s3:ObjectRemoved:*",
        "s3:ObjectRemoved:Delete",
        "s3:ObjectRemoved:DeleteMarkerCreated",
        "s3:ObjectRestore:*",
        "s3:ObjectRestore:Post",
        "s3:ObjectRestore:Completed",
        "s3:ObjectRestore:Delete",
        "s3:ReducedRedundancyLostObject",
        "s3:Replication:*",
        "s3:Replication:OperationFailedReplication",
        "s3:Replication:OperationNotTracked",
        "s3:Replication:OperationMissedThreshold",
        "s3:Replication:OperationReplicatedAfterThreshold",
        "s3:LifecycleExpiration:*",
        "s3:LifecycleExpiration:Delete",
        "s3:LifecycleExpiration:DeleteMarkerCreated",
        "s3:LifecycleTransition",
        "s3:IntelligentTiering",
        "s3:ObjectTagging:*",
        "s3:ObjectTagging:Put",
        "s3:ObjectTagging:Delete",
        "s3:ObjectAcl:Put",
    }
)
_FUNCTION_ARN_RE = re.compile(
    r"arn:(aws[a-zA-Z-]*):lambda:([a-z0-9-]+):(\d{12}):function:([a-zA-Z0-9_-]{1,64})(?::(\$LATEST|[a-zA-Z0-9_-]{1,128}))?"
)


class FunctionConfig(msgspec.Struct, frozen=True):
    id: str
    arn: str
    function: str
    qualifier: str  # $LATEST, a version or an alias
    events: list[str]
    prefix: str | None = None
    suffix: str | None = None


class NotificationConfig(msgspec.Struct, frozen=True):
    functions: list[FunctionConfig] = []


class RequestContext(msgspec.Struct, frozen=True):
    """Who caused an event, as the record reports it."""

    request_id: str
    host_id: str
    principal: str  # userIdentity.principalId
    source_ip: str
    owner: str  # bucket.ownerIdentity.principalId


class PendingEvent(msgspec.Struct, frozen=True):
    id: str
    created_s: float
    function: str
    qualifier: str
    payload: bytes
    source_arn: str


_config_dec = msgspec.json.Decoder(NotificationConfig)


def decode_config(blob: bytes | None) -> NotificationConfig:
    return NotificationConfig() if blob is None else _config_dec.decode(blob)


def _argument_error(message: str, name: str, value: str) -> S3Error:
    return S3Error("InvalidArgument", message, ArgumentName=name, ArgumentValue=value)


def _filter(node: Node | None) -> tuple[str | None, str | None]:
    if node is None:
        return None, None
    key = node.find("S3Key")
    if key is None:
        return None, None
    rules: dict[str, str] = {}
    for rule in key.find_all("FilterRule"):
        name = (rule.child_text("Name") or "").strip().lower()
        value = rule.child_text("Value") or ""
        if name not in ("prefix", "suffix"):
            raise _argument_error("FilterRule name must be either prefix or suffix", "FilterRule", name)
        if name in rules:
            raise _argument_error(f"Cannot specify more than one {name} rule in a filter.", "FilterRule", name)
        if len(value.encode()) > 1024:
            raise _argument_error(f"The {name} rule's value is longer than 1024 bytes.", "FilterRule", value[:64])
        rules[name] = value
    return rules.get("prefix"), rules.get("suffix")


def parse_config(root: Node) -> tuple[NotificationConfig, list[str]]:
    """The configuration in a PutBucketNotificationConfiguration body, and
    the destinations S3 could not deliver to (not functions). Raises
    S3Error for what S3 refuses from the document alone."""
    if root.tag != "NotificationConfiguration":
        raise S3Error("MalformedXML")
    functions: list[FunctionConfig] = []
    others: list[str] = []
    for node in root.children:
        if node.tag in ("TopicConfiguration", "QueueConfiguration"):
            arn = node.child_text("Topic" if node.tag == "TopicConfiguration" else "Queue") or ""
            others.append(arn.strip())
            continue
        if node.tag == "EventBridgeConfiguration":
            raise S3Error("NotImplemented", "EventBridge notifications are not implemented by this server's object store.")
        if node.tag != "CloudFunctionConfiguration":
            raise S3Error("MalformedXML")
        arn = (node.child_text("CloudFunction") or "").strip()
        events = [e.text.strip() for e in node.find_all("Event")]
        if not arn or not events:
            raise S3Error("MalformedXML")
        for name in events:
            if name not in EVENT_TYPES:
                raise _argument_error("The event is not supported for notifications", "Event", name)
        prefix, suffix = _filter(node.find("Filter"))
        config_id = (node.child_text("Id") or "").strip() or base64.b64encode(str(uuid.uuid4()).encode()).decode().rstrip("=")
        m = _FUNCTION_ARN_RE.fullmatch(arn)
        function, qualifier = (m.group(4), m.group(5) or "$LATEST") if m else ("", "$LATEST")
        functions.append(FunctionConfig(config_id, arn, function, qualifier, sorted(set(events), key=events.index), prefix, suffix))
    if len(functions) + len(others) > MAX_CONFIGURATIONS:
        raise _argument_error(
            f"A bucket may have at most {MAX_CONFIGURATIONS} notification configurations.", "NotificationConfiguration", str(len(functions))
        )
    ids = [f.id for f in functions]
    if len(set(ids)) != len(ids):
        raise _argument_error("Configuration ids must be unique", "Id", next(i for i in ids if ids.count(i) > 1))
    _check_overlaps(functions)
    return NotificationConfig(functions), others


def _event_types_overlap(a: str, b: str) -> bool:
    if a == b:
        return True
    if a.endswith(":*") and b.startswith(a[:-1]):
        return True
    return b.endswith(":*") and a.startswith(b[:-1])


def _check_overlaps(functions: list[FunctionConfig]) -> None:
    for i, a in enumerate(functions):
        for b in functions[i + 1 :]:
            if not any(_event_types_overlap(x, y) for x in a.events for y in b.events):
                continue
            pa, pb = a.prefix or "", b.prefix or ""
            sa, sb = a.suffix or "", b.suffix or ""
            if (pa.startswith(pb) or pb.startswith(pa)) and (sa.endswith(sb) or sb.endswith(sa)):
                if not (pa or pb or sa or sb):
                    raise _argument_error(
                        "Configurations overlap. Configurations on the same bucket cannot share a common event type.",
                        "Event",
                        next(x for x in a.events for y in b.events if _event_types_overlap(x, y)),
                    )
                raise _argument_error(
                    "Configuration is ambiguously defined. Cannot have overlapping suffixes in two rules if the prefixes are overlapping for the same event type.",
                    "Event",
                    next(x for x in a.events for y in b.events if _event_types_overlap(x, y)),
                )


def check_destinations(config: NotificationConfig, others: list[str], can_invoke: Callable[[FunctionConfig], str | None]) -> None:
    """S3's check of every destination: ``can_invoke`` says why a function
    cannot be invoked by S3 for this bucket (None when it can). All
    failures are reported together, as S3 numbers them."""
    failures: list[tuple[str, str]] = []
    for arn in others:
        failures.append((arn, "This server's object store delivers bucket events to Lambda functions only"))
    for f in config.functions:
        if not f.function:
            failures.append((f.arn, "Invalid ARN"))
            continue
        reason = can_invoke(f)
        if reason is not None:
            failures.append((f.arn, reason))
    if failures:
        extra: dict[str, str] = {}
        for n, (name, value) in enumerate(failures, 1):
            extra[f"ArgumentName{n}"] = name
            extra[f"ArgumentValue{n}"] = value
        raise S3Error("InvalidArgument", "Unable to validate the following destination configurations", **extra)  # type: ignore[arg-type]  # ArgumentName<n>/ArgumentValue<n>, never status


def render_config(config: NotificationConfig) -> list[tuple[str, object]]:
    """The configuration as GetBucketNotificationConfiguration's XML items."""
    items: list[tuple[str, object]] = []
    for f in config.functions:
        body: list[tuple[str, object]] = [("Id", f.id), ("CloudFunction", f.arn)]
        body += [("Event", e) for e in f.events]
        rules = []
        if f.prefix is not None:
            rules.append(("FilterRule", {"Name": "Prefix", "Value": f.prefix}))
        if f.suffix is not None:
            rules.append(("FilterRule", {"Name": "Suffix", "Value": f.suffix}))
        if rules:
            body.append(("Filter", {"S3Key": rules}))
        items.append(("CloudFunctionConfiguration", body))
    return items


# --- the event record ---------------------------------------------------------


def encode_key(key: str) -> str:
    """The key as S3's event record carries it: form-URL-encoded (a space
    is "+", a "+" is "%2B"), with "/" left as it is."""
    return urllib.parse.quote_plus(key, safe="/")


def event_time(wall_s: float) -> str:
    t = datetime.datetime.fromtimestamp(wall_s, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _matches(f: FunctionConfig, event_name: str, encoded_key: str) -> bool:
    full = "s3:" + event_name
    family = full.rsplit(":", 1)[0] + ":*"
    if full not in f.events and family not in f.events:
        return False
    # S3 compares filter values with the key as the record encodes it (its
    # documentation: a space in a prefix or suffix is written "+").
    if f.prefix is not None and not encoded_key.startswith(f.prefix):
        return False
    return f.suffix is None or encoded_key.endswith(f.suffix)


def record(
    *,
    event_name: str,
    bucket: str,
    key: str,
    size: int | None,
    etag: str | None,
    sequencer: int,
    config_id: str,
    ctx: RequestContext,
    region: str,
    wall_s: float,
) -> dict:
    """One S3 event record, eventVersion 2.1, as AWS delivers it to Lambda."""
    obj: dict[str, object] = {"key": encode_key(key)}
    if size is not None:
        obj["size"] = size
    if etag is not None:
        obj["eTag"] = etag
    obj["sequencer"] = f"{sequencer:016X}"
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": event_time(wall_s),
        "eventName": event_name,
        "userIdentity": {"principalId": ctx.principal},
        "requestParameters": {"sourceIPAddress": ctx.source_ip},
        "responseElements": {"x-amz-request-id": ctx.request_id, "x-amz-id-2": ctx.host_id},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": config_id,
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": ctx.owner}, "arn": f"arn:aws:s3:::{bucket}"},
            "object": obj,
        },
    }


def events_for(
    config: NotificationConfig,
    event_name: str,
    bucket: str,
    key: str,
    size: int | None,
    etag: str | None,
    sequencer: int,
    ctx: RequestContext,
    region: str,
    wall_s: float,
) -> list[PendingEvent]:
    """The events one change causes: one per matching configuration, each
    the payload a function receives ({"Records": [record]})."""
    encoded = encode_key(key)
    out = []
    for f in config.functions:
        if not _matches(f, event_name, encoded):
            continue
        rec = record(
            event_name=event_name,
            bucket=bucket,
            key=key,
            size=size,
            etag=etag,
            sequencer=sequencer,
            config_id=f.id,
            ctx=ctx,
            region=region,
            wall_s=wall_s,
        )
        out.append(
            PendingEvent(
                str(uuid.uuid4()), wall_s, f.function, f.qualifier, msgspec.json.encode({"Records": [rec]}), f"arn:aws:s3:::{bucket}"
            )
        )
    return out
