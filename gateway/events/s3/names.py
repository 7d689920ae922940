"""S3's rules for bucket names and object keys.

Bucket names follow S3's current rules for new buckets (general purpose
buckets, any region): 3-63 characters of lower-case letters, digits, dots
and hyphens, starting and ending with a letter or digit, no two adjacent
dots, not shaped like an IPv4 address, and none of the prefixes and
suffixes S3 reserves. Keys are 1-1024 bytes of UTF-8.
"""

from __future__ import annotations

import re

from .errors import S3Error

MAX_KEY_BYTES = 1024

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4_RE = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def bucket_name_problem(name: str) -> str | None:
    """Why S3 would refuse this bucket name, or None."""
    if not 3 <= len(name) <= 63:
        return "Bucket name must be between 3 and 63 characters long"
    if not _BUCKET_RE.fullmatch(name):
        return "Bucket name must use only lower-case letters, numbers, dots and hyphens, and begin and end with a letter or number"
    if ".." in name:
        return "Bucket name must not contain two adjacent periods"
    if _IPV4_RE.fullmatch(name):
        return "Bucket name must not be formatted as an IP address"
    if name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        return "Bucket name must not use a prefix or suffix reserved by S3"
    return None


def check_bucket_name(name: str) -> str:
    if bucket_name_problem(name) is not None:
        raise S3Error("InvalidBucketName", BucketName=name)
    return name


def check_key(key: str) -> str:
    """A key as decoded from the request path. Raises S3Error."""
    if not key:
        # A path that names a bucket and no key is a bucket request; an
        # empty key can only come from an operation that needs one.
        raise S3Error("InvalidArgument", "Object key must not be empty", ArgumentName="key", ArgumentValue="")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates from a bad percent-encoding
        raise S3Error("InvalidURI") from None
    if size > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", Size=str(size), MaxSizeAllowed=str(MAX_KEY_BYTES))
    return key
