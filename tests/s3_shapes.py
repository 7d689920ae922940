"""Checks a response document against botocore's own service model: every
element must be a member of the operation's output shape (by its wire
name), nested as the model nests it, and every scalar must parse as its
type. botocore's parser ignores what it does not know, so a typo in an
element name would pass a boto3 call and fail only here."""

from __future__ import annotations

import datetime
import json
import xml.etree.ElementTree as ET

import botocore.session

_session = botocore.session.get_session()
_models: dict[str, object] = {}


def model(service: str):
    if service not in _models:
        _models[service] = _session.get_service_model(service)
    return _models[service]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _scalar(text: str, shape, path: str) -> None:
    kind = shape.type_name
    if kind in ("integer", "long"):
        int(text)
    elif kind == "boolean":
        assert text in ("true", "false"), f"{path}: {text!r} is not a boolean"
    elif kind == "timestamp":
        datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    elif kind == "string" and shape.enum:
        assert text in shape.enum, f"{path}: {text!r} is not one of {shape.enum}"


def _check(elem: ET.Element, shape, path: str) -> None:
    if shape.type_name == "structure":
        wire = {}
        for name, member in shape.members.items():
            if member.serialization.get("location"):
                continue  # a header or the status code, not the body
            wire[member.serialization.get("name", name)] = member
        for child in elem:
            tag = _local(child.tag)
            assert tag in wire, f"{path}: <{tag}> is not a member of {shape.name} ({sorted(wire)})"
            member = wire[tag]
            if member.type_name == "list" and member.serialization.get("flattened"):
                _check(child, member.member, f"{path}/{tag}")
            else:
                _check(child, member, f"{path}/{tag}")
    elif shape.type_name == "list":
        item_name = shape.member.serialization.get("name", "member")
        for child in elem:
            assert _local(child.tag) == item_name, f"{path}: list item <{_local(child.tag)}>, expected <{item_name}>"
            _check(child, shape.member, f"{path}/{item_name}")
    else:
        assert len(elem) == 0, f"{path}: a {shape.type_name} has child elements"
        _scalar(elem.text or "", shape, path)


def assert_s3_output(operation: str, body: bytes) -> None:
    op = model("s3").operation_model(operation)
    shape = op.output_shape
    payload = shape.serialization.get("payload")
    if payload is not None:
        shape = shape.members[payload]
    root = ET.fromstring(body)
    _check(root, shape, _local(root.tag))


def assert_s3_error(body: bytes, code: str) -> ET.Element:
    root = ET.fromstring(body)
    assert root.tag == "Error"
    assert root.findtext("Code") == code, body
    assert root.findtext("Message") and root.findtext("RequestId")
    return root


def assert_json_output(service: str, operation: str, body: bytes) -> None:
    """The same for a JSON protocol answer (SQS, Lambda)."""
    shape = model(service).operation_model(operation).output_shape
    doc = json.loads(body) if body else {}
    _check_json(doc, shape, operation)


def _check_json(value, shape, path: str) -> None:
    if shape is None:
        assert value in ({}, None), f"{path}: output where the model has none"
        return
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), f"{path}: expected an object"
        for key, item in value.items():
            assert key in shape.members, f"{path}: {key!r} is not a member of {shape.name}"
            _check_json(item, shape.members[key], f"{path}.{key}")
    elif kind == "list":
        assert isinstance(value, list), f"{path}: expected a list"
        for i, item in enumerate(value):
            _check_json(item, shape.member, f"{path}[{i}]")
    elif kind == "map":
        assert isinstance(value, dict), f"{path}: expected a map"
        for key, item in value.items():
            _check_json(key, shape.key, f"{path} key")
            _check_json(item, shape.value, f"{path}[{key}]")
    elif kind in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), f"{path}: {value!r} is not an integer"
    elif kind == "boolean":
        assert isinstance(value, bool), f"{path}: {value!r} is not a boolean"
    elif kind in ("string", "blob"):
        assert isinstance(value, str), f"{path}: {value!r} is not a string"
        if kind == "string" and shape.enum:
            assert value in shape.enum, f"{path}: {value!r} is not one of {shape.enum}"
    elif kind == "timestamp":
        assert isinstance(value, (int, float, str)), f"{path}: {value!r} is not a timestamp"
