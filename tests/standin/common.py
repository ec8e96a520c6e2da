"""What every service's answers share: the Answer value, JSON bodies, error pages, Retry-After.

Answers are plain values built by pure functions, so each service's format can be tested without
a socket and the handler only moves bytes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

SERVICES = ("arxiv", "oembed", "syndication", "semantic_scholar", "hf_papers", "openalex")
PATHS = {
    "/api/query": "arxiv",
    "/oembed": "oembed",
    "/tweet-result": "syndication",
    "/graph/v1/paper/batch": "semantic_scholar",
    "/openalex/works": "openalex",
}
HF_PREFIX = "/api/papers/"  # + the arXiv ID: a path per paper, so not in PATHS


def service_of_path(path: str) -> str:
    """The service a path belongs to (Hugging Face: a path per paper; OpenAlex:
    ``/openalex/works`` and everything below)."""
    if path.startswith(HF_PREFIX):
        return "hf_papers"
    if path.rstrip("/").startswith("/openalex/works/"):
        return "openalex"
    return PATHS.get(path.rstrip("/"), "other")


JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"

MAINTENANCE_HTML = (
    b"<!DOCTYPE html>\n<html><head><title>arXiv is down for maintenance</title></head>\n"
    b"<body><h1>arXiv is down for maintenance</h1>\n"
    b"<p>We are performing scheduled maintenance. Please try again later.</p></body></html>\n"
)
TWITTER_HTML = (
    b"<!DOCTYPE html>\n<html><head><title>Something went wrong</title></head>\n"
    b"<body><p>Something went wrong, but don\xe2\x80\x99t fret \xe2\x80\x94 let\xe2\x80\x99s give"
    b" it another shot.</p></body></html>\n"
)
GATEWAY_HTML = (
    b"<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><center><h1>502 Bad Gateway</h1></center></body></html>\n"
)
S2_TOO_MANY = (
    "Too Many Requests. Please wait and try again or apply for a key for higher rate limits. "
    "https://www.semanticscholar.org/product/api#api-key-form"
)
OPENALEX_MESSAGES = {
    429: "Insufficient budget. This request costs $0.0001 but you only have $0 remaining.",
    403: "Rate limit exceeded: at most 100 requests per second.",
}
# A body cut short at a point where it cannot parse, per service (``bad_json`` fault).
BAD_JSON = {
    "syndication": b'{"__typename":"Tweet","id_str":',
    "semantic_scholar": b'[{"paperId":',
    "hf_papers": b'{"id":"',
}


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def first(params: dict[str, list[str]], name: str, default: str) -> str:
    values = params.get(name)
    return values[0] if values else default


def json_answer(status: int, obj: Any, *, escape_slashes: bool = False) -> Answer:
    """A JSON answer; Twitter's oEmbed escapes ``/`` as ``\\/`` (harmless for JSON readers,
    fatal for naive string matching), so that service asks for it."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    if escape_slashes:
        text = text.replace("/", "\\/")
    return Answer(status, JSON_TYPE, text.encode("utf-8"))


def retry_after(value: float | str | None) -> dict[str, str]:
    """Seconds as a number, or ``"date:<seconds>"`` for an HTTP-date that far ahead."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {"Retry-After": formatdate(time.time() + float(value[5:]), usegmt=True)}
    return {"Retry-After": str(int(value) if float(value).is_integer() else value)}


def status_answer(service: str, code: int, after: float | str | None = None) -> Answer:
    """An error status in the body format the service uses for it."""
    if service == "oembed":
        ans = json_answer(code, {"errors": [{"code": code, "message": f"HTTP {code}"}]})
    elif service == "syndication":
        ans = json_answer(code, {"error": f"HTTP {code}"})
    elif service == "semantic_scholar" and code == 429:
        ans = json_answer(code, {"message": S2_TOO_MANY, "code": "429"})
    elif service == "semantic_scholar" and code == 400:  # what it says to an ID it refuses
        ans = json_answer(code, {"error": "Invalid paper ID in the request"})
    elif service == "semantic_scholar":
        ans = json_answer(code, {"message": "Internal Server Error", "code": str(code)})
    elif service == "openalex":
        ans = json_answer(
            code, {"error": f"HTTP {code}", "message": OPENALEX_MESSAGES.get(code, "")}
        )
    elif service == "hf_papers" and code == 429:
        ans = json_answer(code, {"error": "You have exceeded our rate limit for api requests."})
    elif service == "hf_papers":
        ans = json_answer(code, {"error": f"HTTP {code}"})
    elif service == "arxiv" and code == 429:
        ans = Answer(code, TEXT_TYPE, b"Rate exceeded.")
    else:
        ans = Answer(code, TEXT_TYPE, f"HTTP {code}\n".encode())
    ans.headers.update(retry_after(after))
    return ans


def html_page(service: str) -> Answer:
    """The 200 HTML page a service has answered during incidents instead of its format."""
    body = {"arxiv": MAINTENANCE_HTML, "semantic_scholar": GATEWAY_HTML}.get(service, TWITTER_HTML)
    return Answer(200, HTML_TYPE, body)


def bad_json(service: str) -> Answer:
    return Answer(200, JSON_TYPE, BAD_JSON.get(service, b'{"html": '))


def truncated(normal: Answer) -> Answer:
    """The first half of the normal body, with a matching Content-Length."""
    return Answer(200, normal.content_type, normal.body[: len(normal.body) // 2])
