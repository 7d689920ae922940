"""A pure-Python stand-in for the part of msgspec the worker uses.

msgspec is a compiled extension, built for one Python version. A worker
runs on the interpreter its function's Runtime names (python3.9 ...
python3.13), and an interpreter for which no msgspec build has been
installed (`lambdalet runtimes install`, README: Runtimes) imports this
module instead, so that every interpreter the host has can run functions
offline. protocol.py and worker.py import it only when `import msgspec`
fails.

It covers exactly what the runtime's frames need: Struct classes with a
tag, encoded as msgpack arrays `[tag, field, ...]` (array_like) or maps,
whose fields hold None, bool, int, float, str, bytes, lists and dicts; a
Decoder for one Struct class or a Union of them; and a JSON Decoder. Nested
Structs are encoded but decoded as plain lists or dicts. Nothing here is on
the trusted side: the gateway decodes what a worker sends with msgspec
itself.
"""

from __future__ import annotations

import json as _json
import struct as _struct
import typing

__all__ = ["Struct", "Meta", "DecodeError", "EncodeError", "msgpack", "json"]


class DecodeError(ValueError):
    """The bytes are not valid msgpack, or not the expected message."""


class EncodeError(TypeError):
    """A value has no msgpack form here."""


class Meta:
    """Accepted and ignored: constraints are the gateway's to check."""

    def __init__(self, **constraints: object) -> None:
        self.constraints = constraints


_MISSING = object()


def _own_annotations(cls: type) -> dict:
    ann = cls.__dict__.get("__annotations__")
    if ann is None:
        try:  # Python 3.14 evaluates annotations lazily
            import annotationlib  # type: ignore[import-not-found]
        except ImportError:
            return {}
        ann = annotationlib.get_annotations(cls, format=annotationlib.Format.STRING)
    return dict(ann)


class Struct:
    """Fields come from the class's annotations, in order; a field with a
    class-level value has that default (lists, dicts and sets are copied per
    instance, as msgspec does)."""

    __struct_fields__: tuple = ()
    __struct_defaults__: dict = {}
    __struct_tag__: object = None
    __struct_tag_field__: str = "type"
    __struct_array_like__ = False

    def __init_subclass__(
        cls, tag: object = None, tag_field: str = "type", array_like: bool | None = None, frozen: bool = False, **_ignored: object
    ) -> None:
        super().__init_subclass__()
        fields = list(cls.__struct_fields__)
        defaults = dict(cls.__struct_defaults__)
        for name, annotation in _own_annotations(cls).items():
            if "ClassVar" in str(annotation):
                continue
            if name not in fields:
                fields.append(name)
            value = cls.__dict__.get(name, _MISSING)
            if value is not _MISSING:
                defaults[name] = value
                delattr(cls, name)  # an instance attribute, not a class one
        seen_default = False
        for name in fields:
            if name in defaults:
                seen_default = True
            elif seen_default:
                raise TypeError(f"{cls.__name__}: required field {name!r} follows a field with a default")
        cls.__struct_fields__ = tuple(fields)
        cls.__struct_defaults__ = defaults
        cls.__struct_tag__ = cls.__name__ if tag is True else tag
        cls.__struct_tag_field__ = tag_field
        if array_like is not None:
            cls.__struct_array_like__ = bool(array_like)

    def __init__(self, *args: object, **kwargs: object) -> None:
        fields = self.__struct_fields__
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes at most {len(fields)} positional arguments ({len(args)} given)")
        for name, value in zip(fields, args):
            if name in kwargs:
                raise TypeError(f"argument {name!r} given by name and position")
            object.__setattr__(self, name, value)
        for name in fields[len(args) :]:
            if name in kwargs:
                value = kwargs.pop(name)
            elif name in self.__struct_defaults__:
                value = self.__struct_defaults__[name]
                if isinstance(value, (list, dict, set, bytearray)):
                    value = value.copy()
            else:
                raise TypeError(f"missing required argument {name!r}")
            object.__setattr__(self, name, value)
        if kwargs:
            raise TypeError(f"unexpected keyword argument {next(iter(kwargs))!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self.__struct_fields__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.__struct_fields__)
        return f"{type(self).__name__}({inner})"


# -- msgpack ----------------------------------------------------------------


def _pack(obj: object, out: bytearray) -> None:
    if obj is None:
        out.append(0xC0)
    elif obj is True:
        out.append(0xC3)
    elif obj is False:
        out.append(0xC2)
    elif isinstance(obj, int):
        _pack_int(obj, out)
    elif isinstance(obj, float):
        out.append(0xCB)
        out += _struct.pack(">d", obj)
    elif isinstance(obj, str):
        data = obj.encode("utf-8")
        _pack_header(len(data), out, 0xA0, 31, 0xD9, 0xDA, 0xDB)
        out += data
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        _pack_header(len(data), out, None, 0, 0xC4, 0xC5, 0xC6)
        out += data
    elif isinstance(obj, Struct):
        _pack_struct(obj, out)
    elif isinstance(obj, (list, tuple)):
        _pack_header(len(obj), out, 0x90, 15, None, 0xDC, 0xDD)
        for item in obj:
            _pack(item, out)
    elif isinstance(obj, dict):
        _pack_header(len(obj), out, 0x80, 15, None, 0xDE, 0xDF)
        for key, value in obj.items():
            _pack(key, out)
            _pack(value, out)
    else:
        raise EncodeError(f"Encoding objects of type {type(obj).__name__} is unsupported")


def _pack_struct(obj: Struct, out: bytearray) -> None:
    cls = type(obj)
    tag = cls.__struct_tag__
    values = [getattr(obj, f) for f in cls.__struct_fields__]
    if cls.__struct_array_like__:
        _pack([tag, *values] if tag is not None else values, out)
        return
    doc: dict = {cls.__struct_tag_field__: tag} if tag is not None else {}
    doc.update(zip(cls.__struct_fields__, values))
    _pack(doc, out)


def _pack_header(n: int, out: bytearray, fix: int | None, fix_max: int, op8: int | None, op16: int, op32: int) -> None:
    if fix is not None and n <= fix_max:
        out.append(fix | n)
    elif op8 is not None and n <= 0xFF:
        out += bytes((op8, n))
    elif n <= 0xFFFF:
        out.append(op16)
        out += _struct.pack(">H", n)
    elif n <= 0xFFFFFFFF:
        out.append(op32)
        out += _struct.pack(">I", n)
    else:
        raise EncodeError("Size larger than 2**32-1 is unsupported")


def _pack_int(n: int, out: bytearray) -> None:
    if 0 <= n <= 0x7F:
        out.append(n)
    elif -32 <= n < 0:
        out.append(n & 0xFF)
    elif 0 <= n <= 0xFFFFFFFFFFFFFFFF:
        for op, fmt, top in ((0xCC, ">B", 0xFF), (0xCD, ">H", 0xFFFF), (0xCE, ">I", 0xFFFFFFFF), (0xCF, ">Q", 1 << 64)):
            if n <= top:
                out.append(op)
                out += _struct.pack(fmt, n)
                return
    elif -(1 << 63) <= n < 0:
        for op, fmt, low in ((0xD0, ">b", -0x80), (0xD1, ">h", -0x8000), (0xD2, ">i", -0x80000000), (0xD3, ">q", -(1 << 63))):
            if n >= low:
                out.append(op)
                out += _struct.pack(fmt, n)
                return
    else:
        raise OverflowError("can't serialize ints < -2**63 or > 2**64 - 1")


# Fixed-width items: opcode -> struct format.
_FIXED = {0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
# Sized items: opcode -> (kind, width of the length field).
_SIZED = {
    0xC4: ("bin", 1),
    0xC5: ("bin", 2),
    0xC6: ("bin", 4),
    0xD9: ("str", 1),
    0xDA: ("str", 2),
    0xDB: ("str", 4),
    0xDC: ("array", 2),
    0xDD: ("array", 4),
    0xDE: ("map", 2),
    0xDF: ("map", 4),
}
_WIDTH = {1: ">B", 2: ">H", 4: ">I"}
MAX_DEPTH = 64  # what the worker's messages need, with room; deeper input is refused


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise DecodeError("Input data was truncated")
        chunk = self.buf[self.pos : end]
        self.pos = end
        return chunk

    def value(self, depth: int = 0) -> object:
        if depth > MAX_DEPTH:
            raise DecodeError("Input is nested too deeply")
        op = self.take(1)[0]
        if op <= 0x7F:
            return op
        if op >= 0xE0:
            return op - 0x100
        if 0x80 <= op <= 0x8F:
            return self._map(op & 0x0F, depth)
        if 0x90 <= op <= 0x9F:
            return [self.value(depth + 1) for _ in range(op & 0x0F)]
        if 0xA0 <= op <= 0xBF:
            return self._str(op & 0x1F)
        if op == 0xC0:
            return None
        if op in (0xC2, 0xC3):
            return op == 0xC3
        fmt = _FIXED.get(op)
        if fmt is not None:
            return _struct.unpack(fmt, self.take(_struct.calcsize(fmt)))[0]
        sized = _SIZED.get(op)
        if sized is None:
            raise DecodeError(f"invalid opcode, '\\x{op:02x}'")
        kind, width = sized
        (n,) = _struct.unpack(_WIDTH[width], self.take(width))
        if kind == "bin":
            return bytes(self.take(n))
        if kind == "str":
            return self._str(n)
        if kind == "array":
            if n > len(self.buf) - self.pos:  # every item takes a byte at least
                raise DecodeError("Input data was truncated")
            return [self.value(depth + 1) for _ in range(n)]
        return self._map(n, depth)

    def _str(self, n: int) -> str:
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"invalid utf-8: {exc}") from None

    def _map(self, n: int, depth: int) -> dict:
        if 2 * n > len(self.buf) - self.pos:
            raise DecodeError("Input data was truncated")
        out = {}
        for _ in range(n):
            key = self.value(depth + 1)
            try:
                out[key] = self.value(depth + 1)
            except TypeError:
                raise DecodeError("map key is not hashable") from None
        return out


def _struct_types(type_: object) -> list[type[Struct]]:
    if isinstance(type_, type) and issubclass(type_, Struct):
        return [type_]
    args = typing.get_args(type_)
    if args and all(isinstance(a, type) and issubclass(a, Struct) for a in args):
        return list(args)
    return []


class _MsgpackEncoder:
    def encode(self, obj: object) -> bytes:
        out = bytearray()
        _pack(obj, out)
        return bytes(out)


class _MsgpackDecoder:
    def __init__(self, type_: object = typing.Any) -> None:
        self._types = _struct_types(type_)
        if type_ is not typing.Any and not self._types:
            raise TypeError(f"msgspec_fallback decodes Structs or a Union of them, not {type_!r}")
        self._by_tag = {t.__struct_tag__: t for t in self._types}

    def decode(self, data: bytes) -> object:
        reader = _Reader(bytes(data))
        value = reader.value()
        if reader.pos != len(reader.buf):
            raise DecodeError("Input data contains trailing characters")
        if not self._types:
            return value
        return self._as_struct(value)

    def _as_struct(self, value: object) -> Struct:
        cls = self._types[0] if len(self._types) == 1 else None
        if isinstance(value, list):
            if cls is None or cls.__struct_tag__ is not None:
                if not value or value[0] not in self._by_tag:
                    raise DecodeError(f"Invalid value {value[:1]!r} - at `$[0]`")
                cls = self._by_tag[value[0]]
                value = value[1:]
            if not cls.__struct_array_like__:
                raise DecodeError("Expected `object`, got `array`")
            args, kwargs = value, {}
        elif isinstance(value, dict):
            if cls is None or cls.__struct_tag__ is not None:
                probe = cls or self._types[0]
                tag = value.get(probe.__struct_tag_field__)
                if tag not in self._by_tag:
                    raise DecodeError(f"Invalid value {tag!r} - at `$.{probe.__struct_tag_field__}`")
                cls = self._by_tag[tag]
            if cls.__struct_array_like__:
                raise DecodeError("Expected `array`, got `object`")
            kwargs = {k: v for k, v in value.items() if k in cls.__struct_fields__}
            args = []
        else:
            raise DecodeError(f"Expected `array`, got `{type(value).__name__}`")
        try:
            return cls(*args, **kwargs)
        except TypeError as exc:
            raise DecodeError(f"{cls.__name__}: {exc}") from None


class _JsonDecoder:
    def decode(self, data: bytes | str) -> object:
        try:
            return _json.loads(data)
        except ValueError as exc:
            raise DecodeError(f"JSON is malformed: {exc}") from None


class _Namespace:
    def __init__(self, **items: object) -> None:
        self.__dict__.update(items)


msgpack = _Namespace(Encoder=_MsgpackEncoder, Decoder=_MsgpackDecoder)
json = _Namespace(Decoder=_JsonDecoder)
