"""A local HTTP stand-in for the arXiv export API and Twitter oEmbed, on 127.0.0.1.

It speaks real HTTP so the crawler is tested through its actual network stack (retries,
throttling, timeouts), and it records every request so tests can check politeness
(concurrency, spacing) as well as results.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import math
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from lxml import etree

from .catalogue import NEW_STYLE_ID, OLD_STYLE_ID, Catalogue, Paper
from .faults import Fault, FaultSet

ATOM = "http://www.w3.org/2005/Atom"
ARXIV = "http://arxiv.org/schemas/atom"
OPENSEARCH = "http://a9.com/-/spec/opensearch/1.1/"
NSMAP = {None: ATOM, "arxiv": ARXIV, "opensearch": OPENSEARCH}
ATOM_TYPE = "application/atom+xml; charset=utf-8"
JSON_TYPE = "application/json; charset=utf-8"
MAX_RESULTS_DEFAULT = 10
MAX_RESULTS_CAP = 2000
SERVICES = ("arxiv", "oembed")

_ID_PIECE = re.compile(rf"(?:{NEW_STYLE_ID.pattern}|{OLD_STYLE_ID.pattern})(?:v\d+)?")
_TWEET_HOSTS = {
    f"{sub}{dom}" for sub in ("", "www.", "mobile.") for dom in ("twitter.com", "x.com")
}
_TWEET_PATH = re.compile(r"/(?:[^/]+|i/web)/status(?:es)?/(\d+)/?")

MAINTENANCE_HTML = (
    b"<!DOCTYPE html>\n<html><head><title>arXiv is down for maintenance</title></head>\n"
    b"<body><h1>arXiv is down for maintenance</h1>\n"
    b"<p>We are performing scheduled maintenance. Please try again later.</p></body></html>\n"
)


@dataclass
class RequestRecord:
    """One request as seen by the stand-in; ``status`` is None when no answer was sent."""

    service: str
    method: str
    path: str
    params: dict[str, list[str]]
    start: float
    end: float = math.nan
    status: int | None = None
    fault: str | None = None
    concurrent: int = 1
    key: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.fault is None


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class StandIn:
    """Both upstreams on one local port; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        catalogue: Catalogue | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: dict[str, float] | None = None,
        quiet: bool = True,
    ) -> None:
        self.catalogue = catalogue if catalogue is not None else Catalogue()
        self.host = host
        self.port = port
        self.latency: dict[str, float] = {s: 0.0 for s in SERVICES} | (latency or {})
        self.faults = FaultSet()
        self.quiet = quiet
        self._log: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> StandIn:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self.host, self.port), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"standin-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns, self._connections = list(self._connections), set()
        for conn in conns:  # idle keep-alive connections would otherwise linger
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def arxiv_url(self) -> str:
        return self.base_url + "/api/query"

    @property
    def oembed_url(self) -> str:
        return self.base_url + "/oembed"

    # -- request log -------------------------------------------------------------------------

    @property
    def log(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def requests_for(self, service: str) -> list[RequestRecord]:
        return sorted((r for r in self.log if r.service == service), key=lambda r: r.start)

    def reset_log(self) -> None:
        with self._lock:
            self._log.clear()

    def max_concurrency(self, service: str) -> int:
        return max((r.concurrent for r in self.requests_for(service)), default=0)

    def min_start_gap(self, service: str) -> float:
        starts = [r.start for r in self.requests_for(service)]
        return min((b - a for a, b in itertools.pairwise(starts)), default=math.inf)

    # -- services ----------------------------------------------------------------------------

    def arxiv_answer(self, params: dict[str, list[str]], *, empty: bool = False) -> Answer:
        """The export API's answer for ``params`` (error feed with 400 on a malformed ID)."""
        ids = [i.strip() for v in params.get("id_list", []) for i in v.split(",") if i.strip()]
        for requested in ids:
            if not _ID_PIECE.fullmatch(requested) or requested in self.catalogue.refused:
                return _error_feed(
                    params,
                    f"incorrect_id_format_for_{requested}",
                    f"incorrect id format for {requested}",
                )
        try:
            start = int(_first(params, "start", "0"))
        except ValueError:
            return _error_feed(params, "start_must_be_an_integer", "start must be an integer")
        try:
            max_results = int(_first(params, "max_results", str(MAX_RESULTS_DEFAULT)))
        except ValueError:
            return _error_feed(
                params, "max_results_must_be_an_integer", "max_results must be an integer"
            )
        if start < 0:
            return _error_feed(params, "start_must_be_non-negative", "start must be non-negative")
        if max_results < 0:
            return _error_feed(
                params, "max_results_must_be_non-negative", "max_results must be non-negative"
            )
        max_results = min(max_results, MAX_RESULTS_CAP)
        found: list[tuple[Paper, int]] = []
        if not empty:  # search_query alone is not modelled: it answers an empty feed
            for requested in ids:
                paper, version = self.catalogue.resolve(requested)
                if paper is not None:
                    found.append((paper, version))
        feed = _feed_head(params, len(found), start, max_results)
        for paper, version in found[start : start + max_results]:
            feed.append(_entry(paper, version))
        return Answer(200, ATOM_TYPE, _serialise(feed))

    def oembed_answer(self, params: dict[str, list[str]]) -> Answer:
        url = _first(params, "url", "")
        if not url:
            return _json_answer(400, {"errors": [{"code": 44, "message": "url is required"}]})
        tweet_id = tweet_id_from_url(url)
        tweet = self.catalogue.tweets.get(tweet_id) if tweet_id else None
        if tweet is None or tweet.status == "deleted":
            return _json_answer(
                404, {"errors": [{"code": 34, "message": "Sorry, that page does not exist"}]}
            )
        if tweet.status == "protected":
            return _json_answer(
                403,
                {
                    "errors": [
                        {
                            "code": 179,
                            "message": "Sorry, you are not authorized to see this status.",
                        }
                    ]
                },
            )
        omit = _first(params, "omit_script", "").lower() in ("1", "true", "t", "yes")
        return _json_answer(200, tweet.oembed(omit_script=omit))

    # -- internals used by the handler ------------------------------------------------------

    def _begin(self, service: str) -> int:
        with self._lock:
            self._in_flight[service] = self._in_flight.get(service, 0) + 1
            return self._in_flight[service]

    def _finish(self, record: RequestRecord) -> None:
        with self._lock:
            self._in_flight[record.service] -= 1
            self._log.append(record)


def tweet_id_from_url(url: str) -> str | None:
    """The status ID from a twitter.com / x.com tweet URL, or None if it is not one."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or (parts.hostname or "") not in _TWEET_HOSTS:
        return None
    m = _TWEET_PATH.fullmatch(parts.path)
    return m.group(1) if m else None


def _first(params: dict[str, list[str]], name: str, default: str) -> str:
    values = params.get(name)
    return values[0] if values else default


def _json_answer(status: int, obj: Any) -> Answer:
    # Twitter escapes "/" as "\/"; harmless for JSON readers, fatal for naive string matching.
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")
    return Answer(status, JSON_TYPE, text.encode("utf-8"))


def _query_echo(params: dict[str, list[str]]) -> dict[str, str]:
    return {
        "search_query": _first(params, "search_query", ""),
        "id_list": ",".join(params.get("id_list", [])),
        "start": _first(params, "start", "0"),
        "max_results": _first(params, "max_results", str(MAX_RESULTS_DEFAULT)),
    }


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrib: str):
    el = etree.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = text
    return el


def _feed_head(
    params: dict[str, list[str]], total: int, start: int, per_page: int
) -> etree._Element:
    echo = _query_echo(params)
    query = urlencode(echo)
    feed = etree.Element(f"{{{ATOM}}}feed", nsmap=NSMAP)
    _sub(
        feed,
        f"{{{ATOM}}}link",
        href=f"http://arxiv.org/api/query?{query}",
        rel="self",
        type="application/atom+xml",
    )
    title = "&".join(f"{k}={v}" for k, v in echo.items())
    _sub(feed, f"{{{ATOM}}}title", f"ArXiv Query: {title}", type="html")
    digest = base64.urlsafe_b64encode(hashlib.sha1(query.encode()).digest()).decode()
    _sub(feed, f"{{{ATOM}}}id", f"http://arxiv.org/api/{digest.rstrip('=')}")
    _sub(feed, f"{{{ATOM}}}updated", datetime.now(UTC).strftime("%Y-%m-%dT00:00:00-04:00"))
    _sub(feed, f"{{{OPENSEARCH}}}totalResults", str(total))
    _sub(feed, f"{{{OPENSEARCH}}}startIndex", str(start))
    _sub(feed, f"{{{OPENSEARCH}}}itemsPerPage", str(per_page))
    return feed


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry(paper: Paper, version: int) -> etree._Element:
    vid = paper.versioned_id(version)
    entry = etree.Element(f"{{{ATOM}}}entry", nsmap=NSMAP)
    _sub(entry, f"{{{ATOM}}}id", f"http://arxiv.org/abs/{vid}")
    _sub(entry, f"{{{ATOM}}}updated", _iso(paper.updated(version)))
    _sub(entry, f"{{{ATOM}}}published", _iso(paper.published))
    _sub(entry, f"{{{ATOM}}}title", paper.title)
    _sub(entry, f"{{{ATOM}}}summary", f"  {paper.summary}\n")  # arXiv pads its abstracts
    for author in paper.authors:
        el = _sub(entry, f"{{{ATOM}}}author")
        _sub(el, f"{{{ATOM}}}name", author.name)
        for aff in author.affiliations:
            _sub(el, f"{{{ARXIV}}}affiliation", aff)
    if paper.doi:
        _sub(entry, f"{{{ARXIV}}}doi", paper.doi)
        _sub(
            entry,
            f"{{{ATOM}}}link",
            title="doi",
            href=f"https://doi.org/{paper.doi}",
            rel="related",
        )
    if paper.comment:
        _sub(entry, f"{{{ARXIV}}}comment", paper.comment)
    if paper.journal_ref:
        _sub(entry, f"{{{ARXIV}}}journal_ref", paper.journal_ref)
    _sub(
        entry,
        f"{{{ATOM}}}link",
        href=f"http://arxiv.org/abs/{vid}",
        rel="alternate",
        type="text/html",
    )
    _sub(
        entry,
        f"{{{ATOM}}}link",
        title="pdf",
        href=f"http://arxiv.org/pdf/{vid}",
        rel="related",
        type="application/pdf",
    )
    _sub(entry, f"{{{ARXIV}}}primary_category", term=paper.primary_category, scheme=ARXIV)
    for cat in paper.categories:
        _sub(entry, f"{{{ATOM}}}category", term=cat, scheme=ARXIV)
    return entry


def _error_feed(params: dict[str, list[str]], slug: str, message: str) -> Answer:
    feed = _feed_head(params, 1, 0, 1)
    entry = _sub(feed, f"{{{ATOM}}}entry")
    err_id = f"https://arxiv.org/api/errors#{slug}"
    _sub(entry, f"{{{ATOM}}}id", err_id)
    _sub(entry, f"{{{ATOM}}}title", "Error")
    _sub(entry, f"{{{ATOM}}}summary", message)
    _sub(entry, f"{{{ATOM}}}updated", datetime.now(UTC).strftime("%Y-%m-%dT00:00:00-04:00"))
    _sub(entry, f"{{{ATOM}}}link", href=err_id, rel="alternate", type="text/html")
    _sub(_sub(entry, f"{{{ATOM}}}author"), f"{{{ATOM}}}name", "arXiv api core")
    return Answer(400, ATOM_TYPE, _serialise(feed))


def _serialise(feed: etree._Element) -> bytes:
    etree.cleanup_namespaces(feed, top_nsmap=NSMAP)
    return etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _retry_after(value: float | str | None) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, str):
        return {"Retry-After": formatdate(time.time() + float(value[5:]), usegmt=True)}
    return {"Retry-After": str(int(value) if float(value).is_integer() else value)}


def _fault_answer(fault: Fault, service: str, normal: Answer) -> Answer:
    """The answer for body-level faults; connection-level ones are handled by the handler."""
    kind = fault.kind
    if fault.status is not None:
        code = fault.status
        if service == "oembed":
            ans = _json_answer(code, {"errors": [{"code": code, "message": f"HTTP {code}"}]})
        else:
            ans = Answer(code, "text/plain; charset=utf-8", f"HTTP {code}\n".encode())
        ans.headers.update(_retry_after(fault.retry_after))
        return ans
    if kind == "html":
        return Answer(200, "text/html; charset=utf-8", MAINTENANCE_HTML)
    if kind == "truncated":
        return Answer(200, normal.content_type, normal.body[: len(normal.body) // 2])
    if kind == "bad_json":
        return Answer(200, JSON_TYPE, b'{"html": ')
    return normal


def _make_handler(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # http.server writes headers and body separately; with Nagle on, a kept-alive
        # connection then waits ~40 ms for the client's delayed ACK on every answer.
        disable_nagle_algorithm = True
        server_version = "StandIn/1.0"
        timeout = 30

        def setup(self) -> None:
            super().setup()
            with standin._lock:
                standin._connections.add(self.connection)

        def finish(self) -> None:
            with standin._lock:
                standin._connections.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            if not standin.quiet:
                super().log_message(format, *args)

        def do_GET(self) -> None:
            self._serve(b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._serve(self.rfile.read(length) if length else b"")

        def _serve(self, body: bytes) -> None:
            parts = urlsplit(self.path)
            raw_body = body.decode("utf-8", "replace")
            params = parse_qs(parts.query, keep_blank_values=True)
            for k, v in parse_qs(raw_body, keep_blank_values=True).items():
                params.setdefault(k, []).extend(v)
            service = {"/api/query": "arxiv", "/oembed": "oembed"}.get(
                parts.path.rstrip("/"), "other"
            )
            key, tweet_id = _request_key(service, params)
            record = RequestRecord(
                service,
                self.command,
                parts.path,
                params,
                time.monotonic(),
                concurrent=standin._begin(service),
                key=key,
            )
            try:
                haystacks = (
                    parts.query,
                    unquote(parts.query),
                    raw_body,
                    unquote(raw_body),
                    tweet_id or "",
                )
                fault = None
                if service != "other":
                    fault = standin.faults.pick(service, key, haystacks)
                record.fault = fault.kind if fault else None
                self._respond(service, params, fault, record)
            finally:
                self._done(record, record.status)

        def _done(self, record: RequestRecord, status: int | None) -> None:
            """Log before the last byte leaves, so a client never sees an answer not yet logged."""
            if math.isnan(record.end):
                record.status = status
                record.end = time.monotonic()
                standin._finish(record)

        def _respond(
            self,
            service: str,
            params: dict[str, list[str]],
            fault: Fault | None,
            record: RequestRecord,
        ) -> None:
            delay = standin.latency.get(service, 0.0)
            if fault is not None and fault.kind == "slow":
                delay += fault.delay
            if delay > 0:
                time.sleep(delay)
            kind = fault.kind if fault else None
            if kind == "drop":
                self.close_connection = True
                self._done(record, None)
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            if kind == "reset":
                self.close_connection = True
                self._done(record, None)
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.rfile.close()
                self.connection.close()  # linger 0: the kernel sends RST instead of FIN
                return
            if service == "arxiv":
                normal = standin.arxiv_answer(params, empty=kind == "empty")
            elif service == "oembed":
                normal = (
                    Answer(200, JSON_TYPE, b"")
                    if kind == "empty"
                    else standin.oembed_answer(params)
                )
            else:
                normal = Answer(404, "text/plain; charset=utf-8", b"not found\n")
            answer = _fault_answer(fault, service, normal) if fault else normal
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if kind == "cut":
                self.send_header("Connection", "close")
            self._done(record, answer.status)
            self.end_headers()
            if kind == "cut":
                self.wfile.write(answer.body[: len(answer.body) // 2])
                self.close_connection = True
            else:
                self.wfile.write(answer.body)

    return Handler


def _request_key(service: str, params: dict[str, list[str]]) -> tuple[str, str | None]:
    """Canonical identity of a request, so retries of the same work share one key."""
    if service == "arxiv":
        ids = sorted(
            i.strip() for v in params.get("id_list", []) for i in v.split(",") if i.strip()
        )
        key = "arxiv:" + ",".join(ids)
        start = _first(params, "start", "0")
        if start not in ("", "0"):
            key += f"|start={start}"
        if not ids:
            key += "|q=" + _first(params, "search_query", "")
        return key, None
    if service == "oembed":
        url = _first(params, "url", "")
        tweet_id = tweet_id_from_url(url)
        return f"oembed:{tweet_id or url}", tweet_id
    return f"other:{sorted(params.items())}", None
