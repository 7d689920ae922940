"""FunctionDirectory.parse: a FunctionName to (name, qualifier), the same
whether it was parsed before or not, and refused every time it is bad."""

from __future__ import annotations

import pytest

from lambdalet.gateway.errors import LambdaError
from lambdalet.gateway.functions import directory
from lambdalet.gateway.functions.directory import FunctionDirectory

ACCOUNT = "123456789012"


def _directory() -> FunctionDirectory:
    return FunctionDirectory([], [], region="us-east-1", account=ACCOUNT, runtimes=None, layers=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("hello", ("hello", None)),
        ("hello:live", ("hello", "live")),
        (f"{ACCOUNT}:function:hello:7", ("hello", "7")),
        (f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:hello:$LATEST", ("hello", "$LATEST")),
    ],
)
def test_a_name_parses_alike_the_first_time_and_after(ref, parsed):
    d = _directory()
    assert d.parse(ref) == parsed
    assert d.parse(ref) == parsed


@pytest.mark.parametrize(
    ("ref", "error_type"),
    [
        (f"arn:aws:lambda:eu-central-1:{ACCOUNT}:function:hello", "ResourceNotFoundException"),
        ("arn:aws:lambda:us-east-1:210987654321:function:hello", "AccessDeniedException"),
        ("not a name", "ValidationException"),
        ("x" * 65, "InvalidParameterValueException"),
        (["hello"], "InvalidRequestContentException"),
    ],
)
def test_a_bad_name_is_refused_every_time(ref, error_type):
    d = _directory()
    d.parse("hello")
    messages = set()
    for _ in range(2):
        with pytest.raises(LambdaError) as caught:
            d.parse(ref)
        assert caught.value.error_type == error_type
        messages.add(caught.value.message)
    assert len(messages) == 1


def test_what_is_kept_is_bounded(monkeypatch):
    monkeypatch.setattr(directory, "_PARSED_MAX", 4)
    d = _directory()
    for i in range(10):
        assert d.parse(f"f{i}") == (f"f{i}", None)
        assert len(d._parsed) <= 4
    long_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{'a' * 64}:{'q' * 150}"
    assert len(long_arn) > directory._PARSED_REF_MAX
    assert d.parse(long_arn) == ("a" * 64, "q" * 150)
    assert long_arn not in d._parsed
