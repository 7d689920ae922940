"""botocore's Lambda service model, loaded once: the shapes every check and
every operation table here is generated from.

The model is the one installed with botocore
(botocore/data/lambda/2015-03-31/service-2.json.gz), so a newer botocore
brings its new members and constraints with it.
"""

from __future__ import annotations

import functools
import re

import botocore.loaders


@functools.cache
def service_model() -> dict:
    return botocore.loaders.Loader().load_service_model("lambda", "service-2")


def shapes() -> dict[str, dict]:
    return service_model()["shapes"]


def operations() -> dict[str, dict]:
    return service_model()["operations"]


def wire_name(member: str) -> str:
    """How AWS names a member in its messages: the model's name with its
    first letter in lower case ('KMSKeyArn' -> 'kMSKeyArn')."""
    return member[:1].lower() + member[1:]


# Java's \p{L} (letters), \p{N} (numbers) and \p{Z} (separators), which the
# model's tag patterns use and Python's re lacks. Inside a character class,
# \w is exactly letters, numbers and '_' for str patterns, and \s is the
# separators plus the control characters below, which \p{Z} does not hold.
_UNICODE_CLASS = re.compile(r"\\p\{([LNZ])\}")
_SPACE_CONTROLS = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f\\x85"


def _translate_class(body: str) -> str:
    classes = set(_UNICODE_CLASS.findall(body))
    if not {"L", "N"} <= classes:
        # Only letters-and-numbers classes (with or without separators) are
        # translated exactly; the tests compile every pattern of the model,
        # so a new combination fails there, not at a user's request.
        raise ValueError(f"unsupported Java character class [{body}]")
    rest = _UNICODE_CLASS.sub("", body)
    excluded = "" if "_" in rest else "_"
    parts = "\\w" + rest
    if "Z" in classes:
        parts = "\\s" + parts
        excluded += _SPACE_CONTROLS
    return f"(?:(?![{excluded}])[{parts}])" if excluded else f"[{parts}]"


@functools.cache
def java_pattern(pattern: str) -> re.Pattern[str]:
    """A model pattern (Java regex syntax, matched against the whole value,
    as Java's String.matches does) as a compiled Python pattern."""
    if "\\p{" in pattern:
        pattern = re.sub(r"\[((?:\\.|[^\]\\])*)\]", lambda m: _translate_class(m.group(1)) if "\\p{" in m.group(1) else m.group(0), pattern)
    return re.compile(pattern)
