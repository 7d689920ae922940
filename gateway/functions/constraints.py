"""The checks botocore's Lambda model declares, made and worded as AWS makes
and words them: a 400 ValidationException before the request goes any
further (before any function is looked up).

Generated from the model: every length, range, pattern, enum and required
member of an operation's input is checked, in the order of the model's
members, depth first. One message lists every violation:

    1 validation error detected: Value 'r1' at 'role' failed to satisfy
    constraint: Member must satisfy regular expression pattern: arn:...
    2 validation errors detected: <first>; <second>

How AWS writes each part (learned from its answers):
- a member is named as the model names it with a lower-case first letter,
  nested members joined by '.', list elements as 'tags.1.member.tagKey';
- a value is printed as Java prints it: 'text', '[a, b]', '{k=v}',
  'Shape(member=value, other=null)'; a missing value is `Value null`, a
  sensitive one (environment variables) is not printed at all;
- a string that breaks its pattern and its length gets one message for
  each; a list or map whose elements break their shape's constraints gets
  one message that lists all of that shape's constraints.

Two constraints of the model are not checked here because AWS checks them
in the operation, with InvalidParameterValueException and other words: the
Runtime enum (AWS lists the runtimes it still accepts) and nothing else so
far; gateway/validation.py holds those semantic checks.
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import lambda_model
from ..errors import LambdaError
from ..lambda_model import java_pattern, wire_name

# Shapes whose model constraints AWS leaves to the operation's own checks.
_UNCHECKED_ENUMS = frozenset({"Runtime"})
# Enums AWS lists in an order of its own (seen in its answers), not the
# model's.
_ENUM_ORDER = {
    "RecursiveLoop": ("Terminate", "Allow"),
    "EventSourcePosition": ("LATEST", "AT_TIMESTAMP", "TRIM_HORIZON"),
}


class TypeMismatch(Exception):
    """A JSON value of the wrong type for its member (a string where the
    model wants an integer, ...): AWS cannot even read such a request."""

    def __init__(self, path: str, expected: str, value: object) -> None:
        super().__init__(f"Cannot deserialize value of type `{expected}` at '{path}' from {_json_kind(value)} value")
        self.path = path


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, (int, float)):
        return "Number"
    if isinstance(value, str):
        return f'String "{value[:64]}"'
    if isinstance(value, list):
        return "Array"
    return "Object"


def java_text(value: object, shape_name: str | None = None) -> str:
    """A value as AWS (Java's toString) prints it in a message."""
    shapes = lambda_model.shapes()
    shape = shapes.get(shape_name or "", {})
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else f"{value:.1f}"
    if isinstance(value, int):
        if shape.get("type") in ("double", "float"):
            return f"{float(value):.1f}"
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        member = shape.get("member", {}).get("shape")
        return "[" + ", ".join(java_text(v, member) for v in value) + "]"
    if isinstance(value, dict):
        if shape.get("type") == "structure":
            fields = ", ".join(f"{wire_name(m)}={java_text(value.get(m), spec['shape'])}" for m, spec in shape["members"].items())
            return f"{shape_name}({fields})"
        val_shape = shape.get("value", {}).get("shape")
        return "{" + ", ".join(f"{k}={java_text(v, val_shape)}" for k, v in value.items()) + "}"
    return str(value)


def _number(value: float | int, shape: dict) -> str:
    if shape["type"] in ("double", "float"):
        return f"{float(value):.1f}" if float(value).is_integer() else repr(float(value))
    return str(int(value))


def _utf16_length(text: str) -> int:
    # Java counts a string's length in UTF-16 code units.
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


class Checker:
    """Collects violations for one request."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self._shapes = lambda_model.shapes()

    # -- what a shape promises, as AWS lists it inside "[...]" ---------------

    def described(self, shape_name: str) -> list[str]:
        shape = self._shapes[shape_name]
        out = []
        if shape["type"] in ("string", "list", "map", "blob"):
            if "max" in shape:
                out.append(f"Member must have length less than or equal to {shape['max']}")
            if "min" in shape:
                out.append(f"Member must have length greater than or equal to {shape['min']}")
        elif shape["type"] in ("integer", "long", "double", "float"):
            if "max" in shape:
                out.append(f"Member must have value less than or equal to {_number(shape['max'], shape)}")
            if "min" in shape:
                out.append(f"Member must have value greater than or equal to {_number(shape['min'], shape)}")
        if "pattern" in shape:
            out.append(f"Member must satisfy regular expression pattern: {shape['pattern']}")
        if "enum" in shape and shape_name not in _UNCHECKED_ENUMS:
            out.append(f"Member must satisfy enum value set: [{', '.join(self._enum(shape_name))}]")
        return out

    def _enum(self, shape_name: str) -> Iterable[str]:
        return _ENUM_ORDER.get(shape_name) or self._shapes[shape_name]["enum"]

    # -- the checks ----------------------------------------------------------

    def structure(self, shape_name: str, value: dict, prefix: str = "") -> None:
        shape = self._shapes[shape_name]
        required = set(shape.get("required", ()))
        for member, spec in shape["members"].items():
            path = f"{prefix}{wire_name(member)}"
            item = value.get(member)
            if item is None:
                if member in required:
                    self._add(None, path, spec["shape"], "Member must not be null")
                continue
            self.value(spec["shape"], item, path)

    def value(self, shape_name: str, value: object, path: str) -> None:
        shape = self._shapes[shape_name]
        kind = shape["type"]
        if kind == "structure":
            if not isinstance(value, dict):
                raise TypeMismatch(path, shape_name, value)
            self.structure(shape_name, value, path + ".")
        elif kind == "list":
            self._list(shape_name, shape, value, path)
        elif kind == "map":
            self._map(shape_name, shape, value, path)
        else:
            for failed in self.scalar_failures(shape_name, value, path):
                self._add(value, path, shape_name, failed)

    def scalar_failures(self, shape_name: str, value: object, path: str) -> list[str]:
        """The constraints a scalar breaks, each as AWS words it."""
        shape = self._shapes[shape_name]
        kind = shape["type"]
        out: list[str] = []
        if kind == "string":
            if not isinstance(value, str):
                raise TypeMismatch(path, "java.lang.String", value)
            if "pattern" in shape and not java_pattern(shape["pattern"]).fullmatch(value):
                out.append(f"Member must satisfy regular expression pattern: {shape['pattern']}")
            length = _utf16_length(value)
            if "max" in shape and length > shape["max"]:
                out.append(f"Member must have length less than or equal to {shape['max']}")
            if "min" in shape and length < shape["min"]:
                out.append(f"Member must have length greater than or equal to {shape['min']}")
            if "enum" in shape and shape_name not in _UNCHECKED_ENUMS and value not in shape["enum"]:
                out.append(f"Member must satisfy enum value set: [{', '.join(self._enum(shape_name))}]")
        elif kind in ("integer", "long"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeMismatch(path, "java.lang.Integer" if kind == "integer" else "java.lang.Long", value)
            self._range(shape, value, out)
        elif kind in ("double", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeMismatch(path, "java.lang.Double", value)
            self._range(shape, value, out)
        elif kind == "boolean":
            if not isinstance(value, bool):
                raise TypeMismatch(path, "java.lang.Boolean", value)
        elif kind == "blob":
            if not isinstance(value, (str, bytes)):
                raise TypeMismatch(path, "java.nio.ByteBuffer", value)
        elif kind == "timestamp":
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise TypeMismatch(path, "java.util.Date", value)
        return out

    @staticmethod
    def _range(shape: dict, value: float, out: list[str]) -> None:
        if "max" in shape and value > shape["max"]:
            out.append(f"Member must have value less than or equal to {_number(shape['max'], shape)}")
        if "min" in shape and value < shape["min"]:
            out.append(f"Member must have value greater than or equal to {_number(shape['min'], shape)}")

    def _list(self, shape_name: str, shape: dict, value: object, path: str) -> None:
        if not isinstance(value, list):
            raise TypeMismatch(path, "java.util.List", value)
        member = shape["member"]["shape"]
        if "max" in shape and len(value) > shape["max"]:
            self._add(value, path, shape_name, f"Member must have length less than or equal to {shape['max']}")
        if "min" in shape and len(value) < shape["min"]:
            self._add(value, path, shape_name, f"Member must have length greater than or equal to {shape['min']}")
        if self._shapes[member]["type"] == "structure":
            for i, item in enumerate(value, start=1):
                if item is not None:
                    self.value(member, item, f"{path}.{i}.member")
            return
        if any(item is None or self.scalar_failures(member, item, f"{path}.{i}.member") for i, item in enumerate(value, start=1)):
            listed = ", ".join(self.described(member) + ["Member must not be null"])
            self._add(value, path, shape_name, f"Member must satisfy constraint: [{listed}]")

    def _map(self, shape_name: str, shape: dict, value: object, path: str) -> None:
        if not isinstance(value, dict):
            raise TypeMismatch(path, "java.util.Map", value)
        key_shape, val_shape = shape["key"]["shape"], shape["value"]["shape"]
        if "max" in shape and len(value) > shape["max"]:
            self._add(value, path, shape_name, f"Member must have length less than or equal to {shape['max']}")
        if "min" in shape and len(value) < shape["min"]:
            self._add(value, path, shape_name, f"Member must have length greater than or equal to {shape['min']}")
        if any(self.scalar_failures(key_shape, k, path) for k in value):
            self._add(value, path, shape_name, f"Map keys must satisfy constraint: [{', '.join(self.described(key_shape))}]")
        if self._shapes[val_shape]["type"] in ("structure", "list", "map"):
            for key, item in value.items():
                if item is not None:
                    self.value(val_shape, item, f"{path}.{key}")
            return
        if any(v is None or self.scalar_failures(val_shape, v, path) for v in value.values()):
            listed = ", ".join(self.described(val_shape) + ["Member must not be null"])
            self._add(value, path, shape_name, f"Map value must satisfy constraint: [{listed}]")

    def _add(self, value: object, path: str, shape_name: str, constraint: str) -> None:
        if value is None:
            shown = "Value null"
        elif self._shapes[shape_name].get("sensitive"):
            shown = "Value"
        else:
            shown = f"Value '{java_text(value, shape_name)}'"
        self.violations.append(f"{shown} at '{path}' failed to satisfy constraint: {constraint}")


def violations(operation: str, params: dict) -> list[str]:
    """Every constraint of the operation's input that params break.
    Raises TypeMismatch for a value of the wrong JSON type."""
    spec = lambda_model.operations()[operation]
    if "input" not in spec:
        return []
    checker = Checker()
    checker.structure(spec["input"]["shape"], params)
    return checker.violations


def message(found: list[str]) -> str:
    count = len(found)
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun} detected: " + "; ".join(found)


def check(operation: str, params: dict) -> None:
    """ValidationException (400) listing every violation, or
    InvalidRequestContentException for a value of the wrong type."""
    try:
        found = violations(operation, params)
    except TypeMismatch as exc:
        raise LambdaError("InvalidRequestContentException", f"Could not parse request body into json: {exc}") from None
    if found:
        raise LambdaError("ValidationException", message(found))


def check_input(operation: str, body: dict | None = None, /, **members: object) -> None:
    """check() for a caller inside the server (the console, a service
    calling another): the operation's input, from a request body and the
    members that travel elsewhere (None meaning absent). The HTTP API has
    checked the same before any handler ran."""
    check(operation, {**(body or {}), **{k: v for k, v in members.items() if v is not None}})
