"""The worker's event parser gives exactly what json.loads gives, including
for the inputs its fast path refuses."""

from __future__ import annotations

import json
import math

import pytest

from lambdalet.runtime.worker import _parse_event

SAME_AS_JSON = [
    b'{"a": 1, "b": [true, false, null], "c": "\\u00e9"}',
    b'{"a": 1, "a": 2}',  # the last duplicate wins in both
    b'{"big": 123456789012345678901234567890}',
    b"[1e400, -1e400, 1.5, -0.0]",
    '\ufeff{"bom": 1}'.encode(),
    '{"utf16": "é"}'.encode("utf-16"),
    b'"\\ud800"',
    b'  {"spaces": 1}  ',
]


@pytest.mark.parametrize("payload", SAME_AS_JSON)
def test_events_parse_as_json_loads_parses_them(payload):
    assert _parse_event(payload) == json.loads(payload)


def test_nan_and_infinity_literals_are_accepted_as_json_loads_accepts_them():
    assert math.isnan(_parse_event(b"NaN"))
    assert _parse_event(b"[Infinity, -Infinity]") == [math.inf, -math.inf]


@pytest.mark.parametrize("payload", [b"{", b"{'a': 1}", b"\xff\xfe\xfd"])
def test_malformed_events_raise_what_json_loads_raises(payload):
    with pytest.raises(ValueError):
        json.loads(payload)
    with pytest.raises(ValueError):
        _parse_event(payload)
