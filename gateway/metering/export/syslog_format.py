"""RFC 5424 syslog messages of a finished call, and RFC 6587's octet
counting for TCP. Pure functions.

Written here rather than taken from a library: the RFC 5424 packages on
PyPI are handlers and formatters for Python's `logging` (a LogRecord in, a
blocking socket out, the newest released in 2022), while the export needs
bytes from a call's lines and figures, sent by its own trio task. The
format is the small part below.

One message per line of the call's log (MSGID `log`), as `lambdalet logs`
shows them, then one per call (MSGID `report`) with the REPORT figures as
structured data, from the platform's own measurements:

  <14>1 2026-12-05T17:01:02.345Z host my-fn 2026/12/05/[$LATEST]3f.. log [lambda@32473 function="my-fn" version="$LATEST" requestId="…"] hello
  <14>1 … my-fn 2026/12/05/[$LATEST]3f.. report [lambda@32473 …][report@32473 durationMs="1.23" …] REPORT RequestId: …

APP-NAME is the function's name (cut to the 48 characters RFC 5424 allows;
the structured data has it whole), PROCID the log stream, i.e. the
execution environment. 32473 is the private enterprise number RFC 5612
reserves for documentation, as no number is registered for Lambdalet.
MSG carries no BOM (RFC 5424 allows MSG-ANY): receivers then store the
line's bytes as they are.
"""

from __future__ import annotations

import datetime
import functools

from ..log_lines import report_line

FACILITY_USER = 1
SEVERITY_INFO = 6
PRI = f"<{FACILITY_USER * 8 + SEVERITY_INFO}>1 ".encode()
SD_ID = "lambda@32473"
REPORT_SD_ID = "report@32473"
# rsyslog's default maxMessageSize: longer messages are cut by the receiver
# anyway, and a UDP datagram of this size still crosses loopback and most
# links whole. The cut keeps whole UTF-8 characters.
MAX_MESSAGE_BYTES = 8192
_NIL = "-"


def header_field(text: str, limit: int) -> str:
    """APP-NAME, PROCID, HOSTNAME: printable US-ASCII without spaces, at
    most `limit` characters, `-` when empty."""
    text = text[:limit]
    if not (text.isascii() and text.isprintable() and " " not in text):
        text = "".join(c if 33 <= ord(c) <= 126 else "_" for c in text)
    return text or _NIL


def sd_value(text: str) -> str:
    # RFC 5424 6.3.3: '"', '\' and ']' are escaped with a backslash.
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def sd_element(sd_id: str, params: dict[str, str]) -> str:
    return "[" + sd_id + "".join(f' {name}="{sd_value(value)}"' for name, value in params.items()) + "]"


@functools.lru_cache(maxsize=64)
def _second(seconds: int) -> bytes:
    # Lines of a batch fall in few seconds: strftime once per second, not per line.
    return PRI + datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.").encode()


def _stamp(ms: int) -> bytes:
    """PRI, VERSION and TIMESTAMP, as RFC 3339 with milliseconds in UTC."""
    seconds, millis = divmod(ms, 1000)
    return _second(seconds) + b"%03dZ" % millis


def message(
    ms: int, hostname: str, app_name: str, procid: str, msgid: str, structured_data: str, msg: str, limit: int = MAX_MESSAGE_BYTES
) -> bytes:
    return _message(_stamp(ms), f" {hostname} {app_name} {procid} {msgid} {structured_data}".encode(), msg, limit)


def _message(stamp: bytes, fields: bytes, msg: str, limit: int) -> bytes:
    head = stamp + fields
    if not msg:
        return head[:limit]
    body = msg.encode("utf-8", errors="replace")
    room = limit - len(head) - 1
    if len(body) > room:
        body = body[: max(room, 0)].decode("utf-8", errors="ignore").encode()
    return b"%b %b" % (head, body)


def octet_counted(msg: bytes) -> bytes:
    """RFC 6587 3.4.1: MSG-LEN SP SYSLOG-MSG, so that a message may hold any byte."""
    return b"%d %b" % (len(msg), msg)


class CallMessages:
    """Turns finished calls into messages for one host name."""

    def __init__(self, hostname: str, *, limit: int = MAX_MESSAGE_BYTES) -> None:
        self.hostname = header_field(hostname, 255)
        self.limit = limit

    def of_call(self, usage, lines: list[tuple[int, str]], log_stream: str | None) -> list[bytes]:
        """usage: the call's ledger.UsageRecord; lines: (ms, text) of its log
        (log_records.split_events), log_stream its stream (None: no log)."""
        # Every field but the stamp and the text is the call's: made once.
        fields = f" {self.hostname} {header_field(usage.function, 48)} {header_field(log_stream or '', 128)} "
        call_sd = sd_element(SD_ID, {"function": usage.function, "version": usage.version, "requestId": usage.request_id})
        log_fields = f"{fields}log {call_sd}".encode()
        limit = self.limit
        out = [_message(_stamp(ms), log_fields, text, limit) for ms, text in lines]
        figures = {
            "durationMs": f"{usage.duration_ns / 1e6:.2f}",
            "billedDurationMs": str(usage.billed_ms),
            "memorySizeMB": str(usage.memory_mb),
            "maxMemoryUsedMB": str(usage.max_memory_mb),
        }
        if usage.cold:
            figures["initDurationMs"] = f"{usage.init_ns / 1e6:.2f}"
        figures["outcome"] = usage.outcome
        figures["coldStart"] = "true" if usage.cold else "false"
        report = report_line(
            usage.request_id,
            usage.duration_ns,
            usage.memory_mb,
            usage.max_memory_mb,
            usage.init_ns if usage.cold else None,
            usage.granularity_ms,
        )
        ended_ms = (usage.started_ns + usage.duration_ns) // 1_000_000
        report_fields = f"{fields}report {call_sd}{sd_element(REPORT_SD_ID, figures)}".encode()
        out.append(_message(_stamp(ended_ms), report_fields, report.decode().rstrip("\n"), limit))
        return out
