"""Settings and spider arguments a crawl cannot run with are refused before it starts."""

from __future__ import annotations

from typing import Any

import pytest

from crawler.commands.crawl import BOOLEANS, NUMBERS, settings_problems
from crawler.services.registry import SERVICES
from crawler.state.freshness import refresh_choices
from spiders.digests import DigestsSpider
from tests.helpers import project_settings

NUMBER_SETTINGS = sorted(
    {**NUMBERS, **{k: v for service in SERVICES for k, v in service.numbers.items()}}.items()
)
CHOICES = refresh_choices(SERVICES)


def _problems(**settings: Any) -> list[str]:
    return settings_problems(project_settings(**settings))


def test_the_project_defaults_are_accepted() -> None:
    assert _problems() == []


@pytest.mark.parametrize(("name", "spec"), NUMBER_SETTINGS, ids=[n for n, _ in NUMBER_SETTINGS])
def test_each_number_setting_is_refused_when_not_a_usable_number(
    name: str, spec: tuple[type, float]
) -> None:
    kind, lowest = spec
    below = lowest - 1 if kind is int else lowest - 0.5
    assert _problems(**{name: lowest}) == []  # the floor itself is fine
    assert _problems(**{name: "x"}) == [f"{name} must be a number, not 'x'"]
    assert _problems(**{name: below}) == [f"{name} must be at least {lowest}, not {below}"]
    for value in ("nan", "inf", "-inf"):
        # int() refuses these outright; floats parse but are not finite
        what = "a number" if kind is int else "a finite number"
        assert _problems(**{name: value}) == [f"{name} must be {what}, not {value!r}"]


@pytest.mark.parametrize(
    ("ttl", "wrong"),
    [
        ({"arxiv/ok": 3, "embed/deleted": 0.5}, None),
        ('{"arxiv/ok": 3}', None),  # as given with -s on the command line
        ({"arxiv/ok": -1}, "arxiv/ok"),
        ({"arxiv/ok": "soon"}, "arxiv/ok"),
        ({"arxiv/ok": True}, "arxiv/ok"),
        ({"arxiv/ok": None}, "arxiv/ok"),
        ({"arxiv/ok": float("nan")}, "arxiv/ok"),
        ({"arxiv/ok": float("inf"), "embed/ok": 1, "embed/deleted": -2}, "arxiv/ok, embed/deleted"),
        ("soon", "(not a JSON object)"),
        ("[1, 2]", "(not a JSON object)"),
    ],
)
def test_state_ttl_days_needs_finite_days_per_kind_and_status(ttl: Any, wrong: str | None) -> None:
    expected = [f"STATE_TTL_DAYS needs finite numbers of days >= 0; wrong: {wrong}"]
    assert _problems(STATE_TTL_DAYS=ttl) == (expected if wrong else [])


@pytest.mark.parametrize("name", BOOLEANS)
@pytest.mark.parametrize("value", ["maybe", "yes please", "on"])
def test_each_boolean_setting_is_refused_when_not_true_or_false(name: str, value: str) -> None:
    # Scrapy's getbool raised from inside a service, a traceback instead of one line.
    assert _problems(**{name: value}) == [f"{name} must be true or false, not {value!r}"]


@pytest.mark.parametrize("value", ["true", "False", "0", "1", True])
def test_boolean_settings_take_what_scrapy_takes(value: Any) -> None:
    assert _problems(**dict.fromkeys(BOOLEANS, value)) == []


def test_refresh_must_be_one_of_its_choices() -> None:
    assert CHOICES[:3] == ("none", "all", "errors") and "arxiv" in CHOICES
    for choice in CHOICES:
        assert _problems(REFRESH=choice) == []
    assert _problems(REFRESH="sometimes") == [
        f"REFRESH must be one of {', '.join(CHOICES)}, not 'sometimes'"
    ]


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_service_urls_must_be_http(service: Any) -> None:
    name = service.url_setting
    assert _problems(**{name: "HTTPS://EXAMPLE.ORG/api"}) == []
    for bad in ("ftp://example.org/api", "example.org/api", "", 42):
        assert _problems(**{name: bad}) == [f"{name} must be an http(s) URL, not {bad!r}"]


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_service_urls_must_be_urls_a_request_can_be_built_from(service: Any) -> None:
    """An endpoint with a byte that is not UTF-8, a port or an IPv6 address that does not parse,
    or a tab (which URL parsers drop) crawled, and every request of the service raised while
    it was built: one line naming the setting instead, before anything starts."""
    name = service.url_setting
    cases = {
        "http://127.0.0.1:1/api\udcff": "byte \\xff is not UTF-8 text (percent-encode it)",
        "http://127.0.0.1:99999/api": "Port out of range 0-65535",
        "http://[::1/api": "Invalid IPv6 URL",
        "http://u:secret@[::1/api": "Invalid IPv6 URL",  # not split, and still no password
        "https://u:secret@127.0.0.1:x/api": "Port could not be cast to integer value as 'x'",
        "http://127.0.0.1/a\tpi": "holds the control character \\t (percent-encode it)",
        "http:///api": "no host",
    }
    for bad, reason in cases.items():
        shown = bad.replace("\udcff", "\\xff").replace("\t", "\\t").replace("u:secret@", "")
        assert _problems(**{name: bad}) == [f"{name} {shown}: not a valid URL: {reason}"]


# -- spider arguments ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "problems"),
    [
        ({}, []),
        ({"source": "digests/", "refresh": "arxiv"}, []),
        ({"_job": "6487ec79", "_version": "1"}, []),  # what Scrapyd adds
        ({"sorce": "digests/"}, ["unknown spider argument 'sorce' (known: source, refresh)"]),
        ({"source": ""}, ["source='' names no file, folder, pattern or URL"]),
        ({"source": " , "}, ["source=' , ' names no file, folder, pattern or URL"]),
        ({"refresh": "bogus"}, [f"refresh=bogus: must be one of {', '.join(CHOICES)}"]),
        (
            {"refresh": "bogus", "sorce": "x", "source": ","},
            [
                "unknown spider argument 'sorce' (known: source, refresh)",
                "source=',' names no file, folder, pattern or URL",
                f"refresh=bogus: must be one of {', '.join(CHOICES)}",
            ],
        ),
    ],
)
def test_spider_argument_problems(args: dict[str, str], problems: list[str]) -> None:
    assert DigestsSpider.argument_problems(args) == problems


def test_the_spider_refuses_to_start_with_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"^unknown spider argument 'sorce'"):
        DigestsSpider(sorce="x")
    assert DigestsSpider(source="digests/", refresh="all").refresh == "all"


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_a_refused_service_url_shows_no_secret_of_its_query(service: Any) -> None:
    """The refusal is printed, not logged, so the log's redaction never saw it: an OpenAlex
    ``api_key=`` (or a token) was printed whole."""
    name = service.url_setting
    got = _problems(**{name: "https://api.example.org:443x/?api_key=SECRET123&x=1"})
    assert got == [
        f"{name} https://api.example.org:443x/?api_key=***&x=1: not a valid URL: "
        "Port could not be cast to integer value as '443x'"
    ]
    assert _problems(**{name: "ftp://x/?token=SECRET123"}) == [
        f"{name} must be an http(s) URL, not 'ftp://x/?token=***'"
    ]


def test_a_service_url_is_checked_as_requested_without_its_user_info() -> None:
    """``user:password@`` can hide a bracket that the request, built without it, chokes on."""
    assert _problems(OEMBED_URL="http://]@[::/api") == [
        "OEMBED_URL http://[::/api: not a valid URL: Invalid IPv6 URL"
    ]
