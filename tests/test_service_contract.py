"""Issue 19: what the Service contract makes every service do, so a new one cannot forget it:
range-check every integer it stores, and check that an answer names what was asked."""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any

import pytest
from scrapy.http import Response

from crawler.services.base import BOUNDS, Service, checked_int
from crawler.services.oembed import OEmbed
from crawler.services.registry import SERVICES
from tests.helpers import project_settings

INT64_MAX = 2**63 - 1
SETTINGS = project_settings()


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_every_integer_field_of_every_service_is_range_checked(
    service: type[Service[Any]],
) -> None:
    hints = typing.get_type_hints(service.value_type)
    integers = {
        f.name
        for f in dataclasses.fields(service.value_type)
        if int in typing.get_args(hints[f.name])
    }
    assert set(service.integers) == integers
    assert set(service.integers.values()) <= set(BOUNDS)


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_a_stored_value_out_of_range_cannot_be_decoded(service: type[Service[Any]]) -> None:
    built = service(SETTINGS)
    for name, kind in service.integers.items():
        highest = BOUNDS[kind][1]
        assert getattr(built.decode({"status": "ok", name: highest}), name) == highest
        with pytest.raises(ValueError, match=f"{name} {highest + 1} is out of range"):
            built.decode({"status": "ok", name: highest + 1})


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        (2**63, "count", "n 9223372036854775808 is out of range (0..9223372036854775807)"),
        (-1, "count", "n -1 is out of range"),
        (10**12, "year", "n 1000000000000 is out of range (1000..9999)"),
        (999, "year", "n 999 is out of range"),
        (0, "version", "n 0 is out of range (1..9223372036854775807)"),
        (True, "count", "n is not an integer"),
        (1.0, "count", "n is not an integer"),
        (10**40, "count", "n 10000000000000000000… (41 digits) is out of range"),
    ],
)
def test_checked_int_refuses_with_one_line_naming_the_field(
    value: object, kind: str, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        checked_int(value, "n", kind)


def test_checked_int_keeps_the_bounds_and_none() -> None:
    assert [checked_int(v, "n", "count") for v in (None, 0, INT64_MAX)] == [None, 0, INT64_MAX]
    assert [checked_int(v, "n", "year") for v in (1000, 9999)] == [1000, 9999]


def test_a_service_without_an_identity_check_cannot_be_built() -> None:
    """Everything of oEmbed but ``about_other``, directly on the contract: refused."""
    forgetful = type(
        "Forgetful", (Service,), {k: v for k, v in vars(OEmbed).items() if k != "about_other"}
    )
    with pytest.raises(TypeError, match="about_other"):
        forgetful(SETTINGS)


def test_oembed_refuses_an_answer_about_another_tweet() -> None:
    service = OEmbed(SETTINGS)
    request = service.build_request(["1405"], {"1405": None})
    body = (
        b'{"url": "https://twitter.com/ada/status/999", "author_name": "Ada", '
        b'"html": "<blockquote class=\\"twitter-tweet\\"><p>hi</p>&mdash; Ada (@ada) '
        b'<a href=\\"https://twitter.com/ada/status/999\\">June 1, 2021</a></blockquote>"}'
    )
    answer = Response(request.url, status=200, body=body, request=request)
    values = service.values(["1405"], answer)
    assert values["1405"].status == "error"
    assert str(values["1405"].error).endswith("oEmbed answer is about tweet 999, not 1405")
    own = body.replace(b"status/999", b"status/1405")
    ok = service.values(["1405"], Response(request.url, status=200, body=own, request=request))
    assert ok["1405"].status == "ok" and ok["1405"].url == "https://twitter.com/ada/status/1405"
