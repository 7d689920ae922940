"""functions/function_input.py on its own (pure): ListFunctions' pages and
markers, the deployment package a request carries, and the 250 MB limit
over code and layers. Through a real server, test_lifecycle.py and
test_contract_*.py cover the same answers."""

from __future__ import annotations

import base64

import pytest

from lambdalet.gateway.errors import LambdaError
from lambdalet.gateway.functions.function_input import ACCOUNT_LIMITS, ZIP_MAX, check_unzipped, page_of_names, zip_from
from lambdalet.gateway.functions.layer_records import LayerRef


def test_pages_follow_each_other_until_the_last_has_no_marker():
    names = sorted(f"fn-{i:02d}" for i in range(7))
    seen, marker = [], None
    while True:
        page, marker = page_of_names(names, marker, "3")
        seen.append(page)
        if marker is None:
            break
    assert seen == [names[0:3], names[3:6], names[6:7]]


def test_a_page_is_fifty_names_by_default_and_an_exact_fit_ends_the_listing():
    names = sorted(f"fn-{i:03d}" for i in range(50))
    assert page_of_names(names, None, None) == (names, None)


def test_a_marker_past_a_deleted_name_goes_on_after_where_it_was():
    page, marker = page_of_names(["a", "b", "c", "d"], None, "2")
    assert page == ["a", "b"]
    assert page_of_names(["a", "c", "d"], marker, "2") == (["c", "d"], None)  # "b" deleted meanwhile


# Not base64 at all (a lenient decoder drops the characters and reads an
# empty name, listing from the start again); base64 of bytes that are not
# UTF-8; base64 in the other alphabet, which no NextMarker of ours uses.
@pytest.mark.parametrize("marker", ["%%%", "__4=", "fn5+"])
def test_a_marker_that_is_not_ours_is_refused(marker):
    with pytest.raises(LambdaError) as caught:
        page_of_names(["a"], marker, None)
    assert (caught.value.error_type, caught.value.message) == ("InvalidParameterValueException", "Invalid marker.")


def test_zip_from_takes_only_a_zip_file_of_at_most_the_limit():
    assert zip_from({"ZipFile": base64.b64encode(b"PK\x03\x04").decode()}) == b"PK\x03\x04"
    with pytest.raises(LambdaError, match="Only Code.ZipFile is supported"):
        zip_from({"S3Bucket": "b", "S3Key": "k"})
    with pytest.raises(LambdaError, match="Could not unzip uploaded file"):
        zip_from({"ZipFile": "not base64!"})
    with pytest.raises(LambdaError) as caught:
        zip_from({"ZipFile": base64.b64encode(b"\0" * (ZIP_MAX + 1)).decode()})
    assert caught.value.error_type == "RequestTooLargeException"


def test_the_unzipped_limit_covers_code_and_layers_together():
    limit = ACCOUNT_LIMITS["CodeSizeUnzipped"]
    layer = LayerRef(arn="arn:aws:lambda:us-east-1:123456789012:layer:l:1", sha256_hex="0" * 64, code_size=1, unzipped_size=limit // 2)
    check_unzipped(limit // 2, [layer])
    with pytest.raises(LambdaError, match=f"exceeds the maximum allowed size of {limit} bytes"):
        check_unzipped(limit // 2 + 1, [layer])
    check_unzipped(limit + 1, [])  # code alone is the code store's to judge
