"""SQS's query protocol: form parameters in, XML out.

Parameters name nested members with dots and 1-based indexes
(``Attribute.1.Name``, ``SendMessageBatchRequestEntry.2.MessageAttribute.1.Value.DataType``);
they become the request document the JSON protocol would have sent, so
one set of operations serves both. Answers are the JSON documents written
as the XML SQS has always sent (``<ReceiveMessageResult><Message>...``).
"""

from __future__ import annotations

from ...events.s3 import xmlsafe
from ...events.sqs.errors import SqsError

NAMESPACE = "http://queue.amazonaws.com/doc/2012-11-05/"
_MAX_INDEX = 100

# query parameter prefix -> (JSON member, kind)
_LISTS = {
    "AttributeName": "AttributeNames",
    "MessageSystemAttributeName": "MessageSystemAttributeNames",
    "MessageAttributeName": "MessageAttributeNames",
    "TagKey": "TagKeys",
}
_ENTRIES = {
    "SendMessageBatchRequestEntry": "Entries",
    "DeleteMessageBatchRequestEntry": "Entries",
    "ChangeMessageVisibilityBatchRequestEntry": "Entries",
}
_SUCCESS_ELEMENT = {
    "SendMessageBatch": "SendMessageBatchResultEntry",
    "DeleteMessageBatch": "DeleteMessageBatchResultEntry",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibilityBatchResultEntry",
}
_LIST_ELEMENT = {"QueueUrls": "QueueUrl", "queueUrls": "QueueUrl", "Messages": "Message", "Failed": "BatchResultErrorEntry"}
_MAP_ELEMENT = {
    "Attributes": ("Attribute", "Name", "Value"),
    "MessageAttributes": ("MessageAttribute", "Name", "Value"),
    "Tags": ("Tag", "Key", "Value"),
}


def _tree(params: list[tuple[str, str]]) -> dict:
    root: dict = {}
    for key, value in params:
        node = root
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SqsError("MalformedQueryString", f"Parameter {key} conflicts with another parameter.")
            node = child
        if isinstance(node.get(parts[-1]), dict):
            raise SqsError("MalformedQueryString", f"Parameter {key} conflicts with another parameter.")
        node[parts[-1]] = value
    return root


def _indexed(node: object, name: str) -> list:
    if not isinstance(node, dict):
        raise SqsError("MalformedQueryString", f"{name} needs an index, as in {name}.1")
    items = []
    for index, value in node.items():
        if not index.isdigit() or not 1 <= int(index) <= _MAX_INDEX:
            raise SqsError("MalformedQueryString", f"{name}.{index} is not a valid index.")
        items.append((int(index), value))
    return [v for _, v in sorted(items)]


def _map(node: object, name: str, key_field: str = "Name", value_field: str = "Value") -> dict:
    out = {}
    for item in _indexed(node, name):
        if not isinstance(item, dict) or key_field not in item:
            raise SqsError("MissingParameter", f"The request must contain the parameter {name}.N.{key_field}.")
        out[item[key_field]] = item.get(value_field, "")
    return out


def _message_attributes(node: object, name: str) -> dict:
    out = {}
    for item in _indexed(node, name):
        if not isinstance(item, dict) or "Name" not in item:
            raise SqsError("MissingParameter", f"The request must contain the parameter {name}.N.Name.")
        value = item.get("Value")
        out[item["Name"]] = value if isinstance(value, dict) else {}
    return out


def _convert(tree: dict) -> dict:
    req: dict = {}
    for key, value in tree.items():
        if key == "Attribute":
            req["Attributes"] = _map(value, key)
        elif key == "Tag":
            req["Tags"] = _map(value, key, "Key", "Value")
        elif key in _LISTS:
            req[_LISTS[key]] = _indexed(value, key)
        elif key == "MessageAttribute":
            req["MessageAttributes"] = _message_attributes(value, key)
        elif key == "MessageSystemAttribute":
            req["MessageSystemAttributes"] = _message_attributes(value, key)
        elif key in _ENTRIES:
            req[_ENTRIES[key]] = [_convert(e) if isinstance(e, dict) else e for e in _indexed(value, key)]
        else:
            req[key] = value
    return req


def request(params: list[tuple[str, str]]) -> tuple[str, dict]:
    """(action, request document) from the form's parameters."""
    tree = _tree(params)
    action = tree.pop("Action", None)
    tree.pop("Version", None)
    if not isinstance(action, str) or not action:
        raise SqsError("MissingParameter", "The request must contain the parameter Action.")
    req = _convert(tree)
    if action == "CreateQueue" and "Tags" in req:
        req["tags"] = req.pop("Tags")
    return action, req


def _items(doc: dict, operation: str) -> list[tuple[str, object]]:
    items: list[tuple[str, object]] = []
    for key, value in doc.items():
        if key in _MAP_ELEMENT and isinstance(value, dict):
            element, k, v = _MAP_ELEMENT[key]
            for name, item in value.items():
                items.append((element, [(k, name), (v, _items(item, operation) if isinstance(item, dict) else item)]))
        elif isinstance(value, list):
            element = _SUCCESS_ELEMENT.get(operation, key) if key == "Successful" else _LIST_ELEMENT.get(key, key)
            for item in value:
                items.append((element, _items(item, operation) if isinstance(item, dict) else item))
        elif isinstance(value, dict):
            items.append((key, _items(value, operation)))
        else:
            items.append((key, value))
    return items


def answer(operation: str, doc: dict, request_id: str) -> bytes:
    body: list[tuple[str, object]] = []
    if doc:
        body.append((f"{operation}Result", _items(doc, operation)))
    body.append(("ResponseMetadata", {"RequestId": request_id}))
    return xmlsafe.document(f"{operation}Response", body, namespace=NAMESPACE)


def error(exc: SqsError, request_id: str) -> bytes:
    return xmlsafe.document(
        "ErrorResponse",
        [
            ("Error", [("Type", exc.fault), ("Code", exc.query_code), ("Message", exc.message), ("Detail", "")]),
            ("RequestId", request_id),
        ],
        namespace=NAMESPACE,
    )
