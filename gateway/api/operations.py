"""Which Lambda operation an HTTP request is, and its input as the model
names it: generated from botocore's model (each operation's method and
request URI, and where each input member travels: path, query string,
header or JSON body).

Sans-IO: the control plane and the invoke path hand in what they parsed.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Mapping

import msgspec

from .. import lambda_model
from ..errors import LambdaError
from ..functions import constraints


class Operation(msgspec.Struct, frozen=True):
    name: str
    method: str
    prefix: str  # the URI's literal text before its first label: a cheap first test
    path_re: re.Pattern
    fixed_query: tuple[tuple[str, str], ...]  # e.g. (("List", "ALL"),) for ListProvisionedConcurrencyConfigs
    uri: dict  # label -> member
    query: dict  # query key -> member
    headers: dict  # lower-case header name -> member
    body: tuple[str, ...]  # members carried in the JSON body
    payload: str | None  # the member that is the whole body, if any
    input_shape: str | None


def _compile(name: str, spec: dict) -> Operation:
    uri = spec["http"]["requestUri"]
    path, _, fixed = uri.partition("?")
    pattern = ""
    for piece in re.split(r"(\{[^}]+\})", path):
        if piece.startswith("{"):
            label = piece[1:-1]
            pattern += f"(?P<{label.rstrip('+')}>.+)" if label.endswith("+") else f"(?P<{label}>[^/]+)"
        else:
            pattern += re.escape(piece)
    fixed_query = tuple(tuple(kv.split("=", 1)) for kv in fixed.split("&") if "=" in kv)
    uri_members: dict = {}
    query: dict = {}
    headers: dict = {}
    body: list[str] = []
    payload = None
    input_shape = spec.get("input", {}).get("shape")
    if input_shape is not None:
        shape = lambda_model.shapes()[input_shape]
        payload = shape.get("payload")
        for member, ref in shape["members"].items():
            location = ref.get("location")
            where = ref.get("locationName", member)
            if location == "uri":
                uri_members[where] = member
            elif location == "querystring":
                query[where] = member
            elif location == "header":
                headers[where.lower()] = member
            elif member != payload:
                body.append(member)
    return Operation(
        name,
        spec["http"]["method"],
        path.split("{", 1)[0],
        re.compile(pattern + "/?$"),
        fixed_query,
        uri_members,
        query,
        headers,
        tuple(body),
        payload,
        input_shape,
    )


@functools.cache
def table() -> tuple[Operation, ...]:
    ops = [_compile(name, spec) for name, spec in lambda_model.operations().items()]
    # Operations whose URI fixes a query parameter are tried first: they
    # share their path with another operation (GET .../provisioned-concurrency
    # is ListProvisionedConcurrencyConfigs with ?List=ALL).
    return tuple(sorted(ops, key=lambda op: (not op.fixed_query, op.name)))


def match(method: str, path: str, query: Mapping[str, list[str]]) -> tuple[Operation, dict[str, str]] | None:
    """The operation for a request, and its path labels (decoded)."""
    for op in table():
        if op.method != method or not path.startswith(op.prefix):
            continue
        m = op.path_re.match(path)
        if m is None or any(query.get(k, [None])[0] != v for k, v in op.fixed_query):
            continue
        return op, {label: urllib.parse.unquote(value) for label, value in m.groupdict().items()}
    return None


def by_name(name: str) -> Operation:
    for op in table():
        if op.name == name:
            return op
    raise KeyError(name)


def _from_text(shape_name: str, text: str, where: str) -> object:
    """A query or header value as the member's type. AWS refuses what it
    cannot read as that type before it validates anything."""
    kind = lambda_model.shapes()[shape_name]["type"]
    if kind in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            raise LambdaError(
                "InvalidRequestContentException", f"Could not parse request: the value '{text}' of {where} is not a number"
            ) from None
    if kind == "boolean":
        if text not in ("true", "false"):
            raise LambdaError(
                "InvalidRequestContentException", f"Could not parse request: the value '{text}' of {where} is not a boolean"
            ) from None
        return text == "true"
    return text


def params(
    op: Operation,
    labels: Mapping[str, str],
    query: Mapping[str, list[str]],
    headers: Mapping[str, str],
    body: Mapping[str, object] | None,
    payload: bytes | None = None,
) -> dict:
    """The operation's input, keyed by member name, from where each member
    travels. headers: lower-case names; body: the JSON body's members;
    payload: the raw body of an operation whose body is one member."""
    shapes = lambda_model.shapes()
    members = shapes[op.input_shape]["members"] if op.input_shape else {}
    out: dict = {}
    for label, member in op.uri.items():
        if label in labels:
            # A path label is text on the wire; a number in the model
            # (a layer's VersionNumber) is read as one, as AWS does.
            out[member] = _from_text(members[member]["shape"], labels[label], label)
    for key, member in op.query.items():
        values = query.get(key)
        if not values:
            continue
        shape_name = members[member]["shape"]
        if shapes[shape_name]["type"] == "list":
            item_shape = shapes[shape_name]["member"]["shape"]
            out[member] = [_from_text(item_shape, v, key) for v in values]
        else:
            out[member] = _from_text(shape_name, values[0], key)
    for name, member in op.headers.items():
        value = headers.get(name)
        if value is not None:
            out[member] = _from_text(members[member]["shape"], value, name)
    if body:
        for member in op.body:
            if member in body:
                out[member] = body[member]
    if op.payload is not None and payload:
        out[op.payload] = payload
    return out


def check(
    op: Operation,
    labels: Mapping[str, str],
    query: Mapping[str, list[str]],
    headers: Mapping[str, str],
    body: Mapping[str, object] | None,
    payload: bytes | None = None,
) -> None:
    """AWS's ValidationException for the request's input, before anything
    else looks at it."""
    constraints.check(op.name, params(op, labels, query, headers, body, payload))
