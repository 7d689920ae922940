"""The validation generator itself, without a server: it covers the whole
model, and its Java-regex translation agrees with Java's classes."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from lambdalet.gateway import lambda_model
from lambdalet.gateway.api import operations
from lambdalet.gateway.errors import LambdaError, error_table
from lambdalet.gateway.functions import constraints


def test_every_pattern_of_the_model_compiles():
    for shape in lambda_model.shapes().values():
        if "pattern" in shape:
            lambda_model.java_pattern(shape["pattern"])  # raises for a Java construct left untranslated


def test_tag_pattern_matches_javas_letter_number_and_separator_classes():
    # TagKey is [\p{L}\p{Z}\p{N}_.:/=+\-@]*, which Python's re cannot say.
    pattern = lambda_model.java_pattern(lambda_model.shapes()["TagKey"]["pattern"])
    wrong = [
        cp
        for cp in range(sys.maxunicode + 1)
        if bool(pattern.fullmatch(chr(cp))) != (unicodedata.category(chr(cp))[0] in "LZN" or chr(cp) in "_.:/=+-@")
    ]
    assert wrong == []


@pytest.mark.parametrize("name", sorted(lambda_model.operations()))
def test_every_operation_is_routed_and_checkable(name):
    op = operations.by_name(name)
    # Its own request URI finds it again.
    path = op.path_re.pattern.replace("\\", "")
    for label in op.uri:
        path = path.replace(f"(?P<{label}>[^/]+)", "x").replace(f"(?P<{label}>.+)", "x")
    path = path.removesuffix("/?$")
    found = operations.match(op.method, path, {k: [v] for k, v in op.fixed_query})
    assert found is not None and found[0].name == name
    # An empty request names exactly its missing required members.
    shape = lambda_model.shapes()[op.input_shape] if op.input_shape else {"required": []}
    missing = constraints.violations(name, {})
    assert (
        missing
        == [
            f"Value null at '{lambda_model.wire_name(m)}' failed to satisfy constraint: Member must not be null"
            for m in shape["members"]
            if m in shape.get("required", ())
        ]
        if op.input_shape
        else missing == []
    )


def test_every_modeled_error_has_its_status_and_message_member():
    table = error_table()
    for name, shape in lambda_model.shapes().items():
        if shape.get("exception"):
            status, member, _typed = table[name]
            assert status == shape["error"]["httpStatusCode"]
            assert member in shape["members"]
    body = LambdaError("CodeVerificationFailedException", "x").body()
    assert body == b'{"Type":"User","Message":"x"}'
    assert LambdaError("ServiceException", "x").body() == b'{"Type":"Service","Message":"x"}'


@pytest.mark.parametrize(
    "value,shape,text",
    [
        (None, None, "null"),
        (2, "Weight", "2.0"),
        (0.25, "Weight", "0.25"),
        (True, None, "true"),
        (["x86_64", "arm64"], "ArchitecturesList", "[x86_64, arm64]"),
        ({"2": 2}, "AdditionalVersionWeights", "{2=2.0}"),
        (
            {"OnSuccess": {"Destination": "arn:aws:iam::1:x"}},
            "DestinationConfig",
            "DestinationConfig(onSuccess=OnSuccess(destination=arn:aws:iam::1:x), onFailure=null)",
        ),
    ],
)
def test_values_print_as_java_prints_them(value, shape, text):
    assert constraints.java_text(value, shape) == text


def test_lengths_count_utf16_units_as_java_does():
    # A letter outside the BMP (U+20000, CJK) is two UTF-16 units: 64 of them are 128.
    checker = constraints.Checker()
    checker.value("TagKey", "\U00020000" * 64, "tagKey")
    assert checker.violations == []
    checker.value("TagKey", "\U00020000" * 65, "tagKey")
    assert checker.violations == [
        "Value '" + "\U00020000" * 65 + "' at 'tagKey' failed to satisfy constraint: Member must have length less than or equal to 128"
    ]
