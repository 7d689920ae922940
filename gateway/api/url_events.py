"""Function URL requests and responses, mapped as AWS maps them. Sans-IO.

A request becomes the API Gateway HTTP API payload v2.0 event; the
function's return value becomes an HTTP response: a dict with statusCode is
taken field by field, anything else is a 200 JSON answer. CORS preflights are
answered here without calling the function.
"""

from __future__ import annotations

import base64
import re
import time
import urllib.parse

import msgspec

_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-www-form-urlencoded",
    "application/graphql",
)


def _is_text(content_type: str | None, body: bytes) -> bool:
    if content_type is None:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    ct = content_type.split(";", 1)[0].strip().lower()
    return ct.startswith(_TEXT_TYPES) or ct.endswith("+json") or ct.endswith("+xml")


_clf_cache = [-1, ""]


def _clf_time(epoch_ms: int) -> str:
    # 12/Mar/2020:19:03:58 +0000, as requestContext.time is written. Cached
    # per second: strftime costs more than the rest of the event.
    second = epoch_ms // 1000
    if _clf_cache[0] != second:
        _clf_cache[0] = second
        _clf_cache[1] = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second))
    return _clf_cache[1]  # type: ignore[return-value]


# The event as typed structs: msgspec encodes a Struct's pre-encoded field
# names faster than a dict's keys, and the call path builds one per request.
# Field order is the payload's key order; omitted defaults are keys AWS
# leaves out.
class _Http(msgspec.Struct):
    method: str
    path: str
    protocol: str
    sourceIp: str
    userAgent: str


class _RequestContext(msgspec.Struct, omit_defaults=True):
    accountId: str
    apiId: str
    domainName: str
    domainPrefix: str
    http: _Http
    requestId: str
    routeKey: str
    stage: str
    time: str
    timeEpoch: int
    authorizer: dict | None = None


class _Event(msgspec.Struct, kw_only=True, omit_defaults=True):
    version: str
    routeKey: str
    rawPath: str
    rawQueryString: str
    headers: dict[str, str]
    cookies: list[str] | None = None
    queryStringParameters: dict[str, str] | None = None
    requestContext: _RequestContext
    body: str | None = None
    isBase64Encoded: bool


_encode = msgspec.json.Encoder().encode


def request_event(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    url_id: str,
    region: str,
    account: str,
    request_id: str,
    authorizer: dict | None = None,
) -> bytes:
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        if name == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    params: dict[str, str] | None = None
    if raw_query:
        params = {}
        for key, value in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
    now_ms = int(time.time() * 1000)
    context = _RequestContext(
        accountId="anonymous" if authorizer is None else account,
        apiId=url_id,
        domainName=f"{url_id}.lambda-url.{region}.on.aws",
        domainPrefix=url_id,
        http=_Http(method, raw_path, "HTTP/1.1", source_ip, joined.get("user-agent", "")),
        requestId=request_id,
        routeKey="$default",
        stage="$default",
        time=_clf_time(now_ms),
        timeEpoch=now_ms,
        authorizer=None if authorizer is None else {"iam": authorizer},
    )
    text: str | None = None
    is_base64 = False
    if body:
        if _is_text(joined.get("content-type"), body):
            text = body.decode("utf-8", errors="replace")
        else:
            text = base64.b64encode(body).decode()
            is_base64 = True
    return _encode(
        _Event(
            version="2.0",
            routeKey="$default",
            rawPath=raw_path,
            rawQueryString=raw_query,
            headers=joined,
            cookies=cookies or None,
            queryStringParameters=params,
            requestContext=context,
            body=text,
            isBase64Encoded=is_base64,
        )
    )


class BadResponse(ValueError):
    """The function returned something a URL cannot turn into HTTP."""


def response_from_result(payload: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Maps a function's JSON result to (status, headers, body)."""
    try:
        value = msgspec.json.decode(payload) if payload else None
    except msgspec.DecodeError as exc:
        raise BadResponse(str(exc)) from None
    if isinstance(value, dict) and "statusCode" in value:
        status = value.get("statusCode")
        if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
            raise BadResponse(f"invalid statusCode {status!r}")
        headers: list[tuple[str, str]] = []
        # Each optional field is looked at only when present: most results
        # carry a statusCode and a body and nothing else.
        single = value.get("headers")
        if single:
            for k, v in single.items():
                if _header_name(k):
                    headers.append((k, _header_value(v)))
        multi = value.get("multiValueHeaders")
        if multi:
            for k, vs in multi.items():
                if _header_name(k):
                    for v in vs if isinstance(vs, list) else [vs]:
                        headers.append((k, _header_value(v)))
        cookies = value.get("cookies")
        if cookies:
            for cookie in cookies:
                headers.append(("Set-Cookie", str(cookie)))
        body = value.get("body")
        if body is None:
            raw = b""
        elif isinstance(body, str):
            if value.get("isBase64Encoded"):
                try:
                    raw = base64.b64decode(body, validate=True)
                except ValueError:
                    raise BadResponse("body is not valid base64") from None
            else:
                raw = body.encode()
        else:
            raw = msgspec.json.encode(body)
        if not headers or not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/json"))
        return status, headers, raw
    if isinstance(value, str):
        return 200, [("Content-Type", "application/json")], value.encode()
    return 200, [("Content-Type", "application/json")], payload


def head_from_prelude(prelude: bytes) -> tuple[int, list[tuple[str, str]]]:
    """A streamed answer's status and headers, from the prelude a
    function wrote with awslambda.HttpResponseStream.from() (JSON with
    statusCode, headers, cookies; all optional)."""
    try:
        value = msgspec.json.decode(prelude)
    except msgspec.DecodeError as exc:
        raise BadResponse(str(exc)) from None
    if not isinstance(value, dict):
        raise BadResponse("the prelude is not a JSON object")
    status = value.get("statusCode", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise BadResponse(f"invalid statusCode {status!r}")
    headers: list[tuple[str, str]] = []
    for k, v in (value.get("headers") or {}).items():
        if _header_name(k):
            headers.append((k, _header_value(v)))
    for cookie in value.get("cookies") or []:
        headers.append(("Set-Cookie", _header_value(cookie)))
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "application/octet-stream"))
    return status, headers


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Framing belongs to the server: a function cannot set these.
_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer", "proxy-connection"})


def _header_name(name: object) -> bool:
    """True for a header the response may carry; raises for a malformed name."""
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise BadResponse(f"invalid header name {name!r}")
    return name.lower() not in _HOP_BY_HOP


def _header_value(v: object) -> str:
    text = v if isinstance(v, str) else msgspec.json.encode(v).decode() if not isinstance(v, (int, float)) else str(v)
    if "\r" in text or "\n" in text:
        raise BadResponse("header values must not contain line breaks")
    return text


# -- CORS --------------------------------------------------------------------


def _origin_allowed(cors: dict, origin: str) -> str | None:
    origins = cors.get("AllowOrigins") or []
    if "*" in origins:
        return "*" if not cors.get("AllowCredentials") else origin
    return origin if origin in origins else None


def preflight(cors: dict | None, origin: str | None, method: str | None) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """Answer for an OPTIONS preflight, or None to pass the request on."""
    if not cors or origin is None or method is None:
        return None
    allowed = _origin_allowed(cors, origin)
    headers: list[tuple[str, str]] = []
    methods = [m.upper() for m in cors.get("AllowMethods") or []]
    if allowed and ("*" in methods or method.upper() in methods):
        headers.append(("Access-Control-Allow-Origin", allowed))
        headers.append(("Access-Control-Allow-Methods", ",".join(methods)))
        if cors.get("AllowHeaders"):
            headers.append(("Access-Control-Allow-Headers", ",".join(cors["AllowHeaders"])))
        if cors.get("AllowCredentials"):
            headers.append(("Access-Control-Allow-Credentials", "true"))
        if cors.get("MaxAge") is not None:
            headers.append(("Access-Control-Max-Age", str(cors["MaxAge"])))
        if allowed != "*":
            headers.append(("Vary", "Origin"))
    return 200, headers, b""


def cors_headers(cors: dict | None, origin: str | None) -> list[tuple[str, str]]:
    """Headers added to an ordinary response for a cross-origin caller."""
    if not cors or origin is None:
        return []
    allowed = _origin_allowed(cors, origin)
    if not allowed:
        return []
    out = [("Access-Control-Allow-Origin", allowed)]
    if cors.get("ExposeHeaders"):
        out.append(("Access-Control-Expose-Headers", ",".join(cors["ExposeHeaders"])))
    if cors.get("AllowCredentials"):
        out.append(("Access-Control-Allow-Credentials", "true"))
    if allowed != "*":
        out.append(("Vary", "Origin"))
    return out
