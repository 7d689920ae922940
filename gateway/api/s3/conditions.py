"""A read's preconditions and range as S3 reads them: If-Match,
If-None-Match, If-Modified-Since, If-Unmodified-Since (also as
x-amz-copy-source-if-* on a copy), and one "bytes=" range."""

from __future__ import annotations

import email.utils
import re

from ...events.s3.errors import S3Error
from ...events.s3.records import ObjectInfo

RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


def etag_matches(header: str, etag: str) -> bool:
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.strip('"') == etag:
            return True
    return False


def parse_http_date(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def check_read_conditions(r, info: ObjectInfo, prefix: str = "") -> None:
    """S3's order: If-Match before If-Unmodified-Since, If-None-Match
    before If-Modified-Since; a true If-Match wins over a false
    If-Unmodified-Since, and a false If-None-Match over a true
    If-Modified-Since."""
    if_match = r.header(f"{prefix}if-match")
    if_none = r.header(f"{prefix}if-none-match")
    unmodified = parse_http_date(r.header(f"{prefix}if-unmodified-since"))
    modified = parse_http_date(r.header(f"{prefix}if-modified-since"))
    changed_s = int(info.modified_s)
    if if_match is not None:
        if not etag_matches(if_match, info.etag):
            raise S3Error("PreconditionFailed", Condition="If-Match")
    elif unmodified is not None and changed_s > unmodified:
        raise S3Error("PreconditionFailed", Condition="If-Unmodified-Since")
    not_modified = "NotModified" if not prefix else "PreconditionFailed"
    if if_none is not None:
        if etag_matches(if_none, info.etag):
            raise S3Error(not_modified) if not prefix else S3Error(not_modified, Condition="If-None-Match")
    elif modified is not None and changed_s <= modified:
        raise S3Error(not_modified) if not prefix else S3Error(not_modified, Condition="If-Modified-Since")


def byte_range(value: str, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for one "bytes=" range; None to ignore the
    header (not one well-formed range: S3 then sends the whole object)."""
    m = RANGE_RE.fullmatch(value.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):
        suffix = int(m.group(2))
        if suffix == 0:
            raise S3Error("InvalidRange", RangeRequested=value, ActualObjectSize=str(size))
        return max(0, size - suffix), size - 1
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else size - 1
    if m.group(2) and last < first:
        return None
    if first >= size:
        raise S3Error("InvalidRange", RangeRequested=value, ActualObjectSize=str(size))
    return first, min(last, size - 1)
