"""Lambda's platform log lines around each call. Pure functions.

The REPORT format is AWS's to the character: tab-separated fields, each
followed by a tab, Init Duration only on a cold start.
"""
from __future__ import annotations

import datetime
import math


def start_line(request_id: str, version: str) -> bytes:
    return f"START RequestId: {request_id} Version: {version}\n".encode()


def end_line(request_id: str) -> bytes:
    return f"END RequestId: {request_id}\n".encode()


def billed_ms(duration_ns: int, granularity_ms: int = 1) -> int:
    """Billed duration: rounded up to the granularity, at least one unit."""
    unit = granularity_ms * 1_000_000
    return max(1, math.ceil(duration_ns / unit)) * granularity_ms


def report_line(
    request_id: str,
    duration_ns: int,
    memory_mb: int,
    max_memory_mb: int,
    init_ns: int | None = None,
    granularity_ms: int = 1,
) -> bytes:
    fields = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ns / 1e6:.2f} ms",
        f"Billed Duration: {billed_ms(duration_ns, granularity_ms)} ms",
        f"Memory Size: {memory_mb} MB",
        f"Max Memory Used: {max_memory_mb} MB",
    ]
    if init_ns is not None:
        fields.append(f"Init Duration: {init_ns / 1e6:.2f} ms")
    return ("\t".join(fields) + "\t\n").encode()


def timestamp() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def timeout_line(request_id: str, timeout_s: float) -> bytes:
    return f"{timestamp()} {request_id} Task timed out after {timeout_s:.2f} seconds\n".encode()


def tail(log: bytes, limit: int = 4096) -> bytes:
    """The last 4 KB, as X-Amz-Log-Result carries them."""
    return log[-limit:]
