"""S3's request XML, parsed defensively, and its response XML, written
carefully. Standard library only (pyexpat).

Parsing refuses what an S3 request never needs and an attacker would use:
a DOCTYPE (so no entity declarations, internal or external, and no
billion-laughs expansion), processing instructions, more than
``MAX_DEPTH`` levels or ``MAX_ELEMENTS`` elements. Any refusal, and any
document that is not well formed, is S3's MalformedXML.

Writing escapes every text (``&``, ``<``, ``>``, quotes) and writes the
characters XML 1.0 cannot carry (controls other than tab and newlines,
lone surrogates, U+FFFE/U+FFFF) as numeric references, as S3 does for keys.
"""

from __future__ import annotations

import re
from typing import NoReturn
from xml.parsers import expat

from .errors import S3Error

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_DEPTH = 16
MAX_ELEMENTS = 20_000
_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


class Node:
    """An element: its local name (namespace dropped), text and children."""

    __slots__ = ("tag", "text", "children")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.text = ""
        self.children: list[Node] = []

    def find(self, tag: str) -> Node | None:
        for child in self.children:
            if child.tag == tag:
                return child
        return None

    def find_all(self, tag: str) -> list[Node]:
        return [c for c in self.children if c.tag == tag]

    def child_text(self, tag: str) -> str | None:
        node = self.find(tag)
        return None if node is None else node.text


class _Refused(Exception):
    pass


def parse(data: bytes) -> Node:
    """The document's root element. Raises S3Error(MalformedXML)."""
    parser = expat.ParserCreate(namespace_separator="}")
    # Parameter entities (in an external DTD subset) are never read.
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[Node] = []
    root: list[Node] = []
    count = 0

    def refuse(*_args: object) -> NoReturn:
        raise _Refused()

    def start(name: str, _attrs) -> None:
        nonlocal count
        count += 1
        if count > MAX_ELEMENTS or len(stack) >= MAX_DEPTH:
            raise _Refused()
        node = Node(name.rpartition("}")[2])
        if stack:
            stack[-1].children.append(node)
        elif root:
            raise _Refused()
        else:
            root.append(node)
        stack.append(node)

    def end(_name: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        if stack:
            stack[-1].text += data

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.ProcessingInstructionHandler = refuse
    try:
        parser.Parse(data, True)
    except (_Refused, expat.ExpatError, ValueError, RecursionError):
        raise S3Error("MalformedXML") from None
    if not root:
        raise S3Error("MalformedXML")
    return root[0]


def parse_bool(node: Node | None, default: bool = False) -> bool:
    if node is None:
        return default
    value = node.text.strip().lower()
    if value in ("true", "false"):
        return value == "true"
    raise S3Error("MalformedXML")


# --- writing -----------------------------------------------------------------

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;", "\r": "&#13;"}
_ESCAPE_RE = re.compile("[&<>\"'\r]")


def escape(text: str) -> str:
    text = _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group()], text)
    if _NOT_XML.search(text):
        text = _NOT_XML.sub(lambda m: f"&#x{ord(m.group()):X};", text)
    return text


Value = "str | int | bool | None | list | tuple | dict"


def element(tag: str, value) -> str:
    """One element. A dict is a structure (its items in order), a list of
    pairs also (for repeated names), a bool is true/false, None is left out."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return f"<{tag}>{'true' if value else 'false'}</{tag}>"
    if isinstance(value, dict):
        inner = "".join(element(k, v) for k, v in value.items())
        return f"<{tag}>{inner}</{tag}>"
    if isinstance(value, list):
        inner = "".join(element(k, v) for k, v in value)
        return f"<{tag}>{inner}</{tag}>"
    return f"<{tag}>{escape(str(value))}</{tag}>"


def document(root: str, items: list[tuple[str, object]] | dict, namespace: str | None = S3_NS) -> bytes:
    """A whole response document; items are (tag, value) pairs in order."""
    if isinstance(items, dict):
        items = list(items.items())
    inner = "".join(element(k, v) for k, v in items)
    ns = f' xmlns="{namespace}"' if namespace else ""
    return f"{_DECLARATION}<{root}{ns}>{inner}</{root}>".encode()
