"""ListObjects(V2)'s pages over the objects table: keys after a marker in
UTF-8 byte order, rolled up into common prefixes under a delimiter.

A common prefix stands for every key under it, so the scan seeks past
them in one step instead of reading them all."""

from __future__ import annotations

import sqlite3

from .records import OBJECT_COLUMNS, Listing, ObjectInfo, row_to_info

_BATCH = 256  # rows read per query


def successor(prefix: str) -> str:
    """The least string greater than every string that starts with prefix
    (code point order, which is also UTF-8 byte order)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:
                nxt = 0xE000
            return prefix[:-1] + chr(nxt)
        prefix = prefix[:-1]
    return "\U0010ffff" * 2


def list_page(db: sqlite3.Connection, bucket: str, *, prefix: str, delimiter: str, after: str, max_keys: int) -> Listing:
    """One page of the bucket's keys (the caller holds the store's lock and
    has checked that the bucket exists). ``after`` may be a common prefix
    returned on the previous page: its keys are skipped."""
    objects: list[ObjectInfo] = []
    prefixes: list[str] = []
    truncated = False
    last: str | None = None
    cursor, inclusive = after, False
    if prefix > after:
        cursor, inclusive = prefix, True
    elif (
        delimiter
        and after.startswith(prefix)
        and after.endswith(delimiter)
        and after.find(delimiter, len(prefix)) == len(after) - len(delimiter)
    ):
        cursor, inclusive = successor(after), True
    done = max_keys <= 0
    while not done:
        rows = db.execute(
            f"SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket=? AND key {'>=' if inclusive else '>'} ? ORDER BY key LIMIT ?",
            (bucket, cursor, _BATCH),
        ).fetchall()
        done = len(rows) < _BATCH
        reseek = None
        for row in rows:
            key = row[1]
            if not key.startswith(prefix):
                done = True
                break
            if len(objects) + len(prefixes) >= max_keys:
                truncated = done = True
                break
            if delimiter:
                at = key.find(delimiter, len(prefix))
                if at >= 0:
                    common = key[: at + len(delimiter)]
                    prefixes.append(common)
                    last = common
                    # Every key under this prefix rolls up into it: seek past them.
                    reseek = successor(common)
                    break
            objects.append(row_to_info(row))
            last = key
        if reseek is not None:
            cursor, inclusive, done = reseek, True, False
        elif rows and not done:
            cursor, inclusive = rows[-1][1], False
    return Listing(objects, prefixes, truncated, last if truncated else None)
