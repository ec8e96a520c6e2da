"""The HTTP side: route a request to its service, apply faults and policy, move the bytes.

Everything a service says is built by the pure answer modules; this module only decides which
answer a request gets (refusal, fault, normal) and how it leaves the socket (whole, cut short,
dropped or reset).
"""

from __future__ import annotations

import contextlib
import math
import socket
import struct
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import arxiv, hf_papers, oembed, openalex, semantic_scholar, syndication
from .common import (
    JSON_TYPE,
    TEXT_TYPE,
    Answer,
    bad_json,
    first,
    html_page,
    service_of_path,
    status_answer,
    truncated,
)
from .faults import SHAPE_KINDS, Fault

if TYPE_CHECKING:
    from .catalogue import Catalogue
    from .server import RequestRecord, StandIn


def request_key(
    service: str, params: dict[str, list[str]], body: bytes = b"", path: str = ""
) -> tuple[str, tuple[str, ...]]:
    """Canonical identity of a request and the IDs it asks for, so retries share one key."""
    if service == "openalex":
        if openalex.is_list(path):
            dois = tuple(sorted(openalex.requested_dois(params)))
            return "openalex:" + "|".join(dois), dois
        ident = unquote(path.rsplit("/works/", 1)[-1]).lower()
        return f"openalex:single:{ident}", (ident.removeprefix("doi:"),)
    if service == "arxiv":
        asked = arxiv.requested_ids(params)
        key = "arxiv:" + ",".join(sorted(asked))
        start = first(params, "start", "0")
        if start not in ("", "0"):
            key += f"|start={start}"
        if not asked:
            key += "|q=" + first(params, "search_query", "")
        return key, tuple(asked)
    if service == "oembed":
        url = first(params, "url", "")
        tweet_id = oembed.tweet_id_from_url(url)
        return f"oembed:{tweet_id or url}", (tweet_id,) if tweet_id else ()
    if service == "syndication":
        tweet_id = first(params, "id", "")
        return f"syndication:{tweet_id}", (tweet_id,) if tweet_id else ()
    if service == "hf_papers":
        arxiv_id = first(params, "_path", "")
        return f"hf_papers:{arxiv_id}", (arxiv_id,) if arxiv_id else ()
    if service == "semantic_scholar":
        parsed = semantic_scholar.parse_ids(body)
        ids = tuple(i for i in parsed if isinstance(i, str)) if isinstance(parsed, list) else ()
        return "semantic_scholar:" + ",".join(sorted(ids)), ids
    return f"other:{sorted(params.items())}", ()


def normal_answer(
    catalogue: Catalogue,
    service: str,
    method: str,
    params: dict[str, list[str]],
    body: bytes,
    *,
    empty: bool = False,
    path: str = "",
) -> Answer:
    """What the service answers when nothing goes wrong (``empty``: an empty body or feed)."""
    if service == "arxiv":
        return arxiv.answer(catalogue, params, empty=empty)
    if service == "openalex" and not empty:
        return openalex.answer(catalogue.openalex, path, params)
    if service not in ("oembed", "syndication", "semantic_scholar", "hf_papers", "openalex"):
        return Answer(404, TEXT_TYPE, b"not found\n")
    if empty:
        return Answer(200, JSON_TYPE, b"")
    if service == "oembed":
        return oembed.answer(catalogue, params)
    if service == "syndication":
        return syndication.answer(catalogue, params)
    if service == "hf_papers":
        return hf_papers.answer(catalogue.hf_pages, hf_papers.PREFIX + first(params, "_path", ""))
    return semantic_scholar.answer(catalogue, method, params, body)


def faulty_answer(
    fault: Fault,
    service: str,
    normal: Answer,
    catalogue: Catalogue,
    params: dict[str, list[str]],
) -> Answer:
    """The answer for body-level faults; connection-level ones are the handler's."""
    kind = fault.kind
    if fault.status is not None:
        return status_answer(service, fault.status, fault.retry_after)
    if kind == "html":
        return html_page(service)
    if kind == "truncated":
        return truncated(normal)
    if kind == "bad_json":
        return bad_json(service)
    if kind in SHAPE_KINDS:
        if service == "arxiv":
            return arxiv.reshape(kind, normal, catalogue, params)
        if kind == "shape:one_tweet_for_all":
            return oembed.one_tweet_for_all(catalogue, params)
        reshape = {
            "oembed": oembed.reshape,
            "syndication": syndication.reshape,
            "hf_papers": hf_papers.reshape,
            "openalex": openalex.reshape,
        }.get(service, semantic_scholar.reshape)
        return reshape(kind, normal)
    return normal


def make_handler(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # http.server writes headers and body separately; with Nagle on, a kept-alive
        # connection then waits ~40 ms for the client's delayed ACK on every answer.
        disable_nagle_algorithm = True
        server_version = "StandIn/1.0"
        timeout = 30

        def setup(self) -> None:
            super().setup()
            standin._connection_opened(self.connection)

        def finish(self) -> None:
            standin._connection_closed(self.connection)
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
            from .server import RequestRecord

            parts = urlsplit(self.path)
            service = service_of_path(parts.path)
            raw_body = body.decode("utf-8", "replace")
            params = parse_qs(parts.query, keep_blank_values=True)
            if service == "hf_papers":  # the ID is the path: kept where request_key looks
                params["_path"] = [unquote(hf_papers.arxiv_id_of(parts.path))]
            if service != "semantic_scholar":  # a form body counts as parameters
                for k, v in parse_qs(raw_body, keep_blank_values=True).items():
                    params.setdefault(k, []).extend(v)
            key, ids = request_key(service, params, body, parts.path)
            record = RequestRecord(service, self.command, parts.path, params, math.nan, key=key)
            record.ids, record.body = ids, body
            record.api_key = self.headers.get("x-api-key")
            record.authorization = self.headers.get("Authorization")
            if service == "syndication":
                record.token_ok = syndication.token_ok(params)
            standin._admit(record)
            try:
                if record.refused is not None:
                    self._send(standin._refusal(service), record)
                    return
                if service == "openalex" and standin._budget_spent(parts.path):
                    record.refused = "budget"
                    self._send(status_answer(service, 429), record)
                    return
                fault = None
                if service != "other":
                    texts = (parts.query, unquote(parts.query), raw_body, unquote(raw_body), *ids)
                    fault = standin.faults.pick(service, key, texts)
                record.fault = fault.kind if fault else None
                standin._pass_gate(service, key)
                self._respond(service, params, body, fault, record)
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
            body: bytes,
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
            catalogue = standin.catalogue
            normal = normal_answer(
                catalogue, service, self.command, params, body, empty=kind == "empty",
                path=urlsplit(self.path).path,
            )  # fmt: skip
            answer = faulty_answer(fault, service, normal, catalogue, params) if fault else normal
            self._send(answer, record, cut=kind == "cut")

        def _send(self, answer: Answer, record: RequestRecord, *, cut: bool = False) -> None:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            # A cut of an empty body (a 301) must still be cut: one byte announced, none sent.
            length = len(answer.body) if answer.body or not cut else 1
            self.send_header("Content-Length", str(length))
            for name, value in {
                **answer.headers,
                **standin._window_headers(record, answer),
            }.items():
                self.send_header(name, value)
            if cut:
                self.send_header("Connection", "close")
            self._done(record, answer.status)
            self.end_headers()
            if cut:
                self.wfile.write(answer.body[: len(answer.body) // 2])
                self.close_connection = True
            else:
                self.wfile.write(answer.body)

    return Handler
