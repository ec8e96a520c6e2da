"""A local HTTP stand-in for arXiv, Twitter oEmbed and syndication, Semantic Scholar,
Hugging Face's paper pages and OpenAlex's works API.

It speaks real HTTP on 127.0.0.1 so the crawler is tested through its actual network stack
(retries, throttling, timeouts), all five services on one port (paths tell them apart), and it
records every request so tests can check politeness (concurrency, spacing, tokens, API keys) as
well as results.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from types import TracebackType

from . import openalex
from .catalogue import Catalogue
from .common import SERVICES, Answer, retry_after, status_answer
from .faults import FaultSet
from .handler import make_handler, request_key
from .oembed import tweet_id_from_url
from .requestlog import (
    RequestRecord,
    max_concurrency,
    min_start_gap,
    peak_admitted,
    throttled_share,
)

__all__ = ["SERVICES", "RequestRecord", "StandIn", "request_key", "tweet_id_from_url"]


class StandIn:
    """All four upstreams on one local port; use as a context manager or call start()/stop().

    ``latency``: seconds added to every answer, per service. ``max_in_flight``: per service, how
    many requests may be served at once; one more gets 429 at once (with ``Retry-After`` if
    ``refusal_retry_after`` is set). ``min_interval``: per service, a request that starts less
    than this many seconds after the previous one started gets 429 (Semantic Scholar: 1.0 by
    default, as its API key allows one request per second); refused requests count as the
    previous one too, so hammering never gets through. OpenAlex refuses with 403 instead (its
    per-second limit; 0.05 s by default), and ``openalex_budget`` list requests (None: no
    limit) spend its daily budget: every list request after them gets 429. ``windows``: per
    service, a fixed window of (requests, seconds) as Hugging Face enforces it (default 500 per
    300 s): every answer carries ``RateLimit``/``RateLimit-Policy`` headers, and a request over
    the window gets 429. All can be changed while the stand-in runs.
    """

    def __init__(
        self,
        catalogue: Catalogue | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: dict[str, float] | None = None,
        quiet: bool = True,
        max_in_flight: dict[str, int] | None = None,
        min_interval: dict[str, float] | None = None,
        refusal_retry_after: float | str | None = None,
        openalex_budget: int | None = None,
        windows: dict[str, tuple[int, float]] | None = None,
    ) -> None:
        self.catalogue = catalogue if catalogue is not None else Catalogue()
        self.host = host
        self.port = port
        self.latency: dict[str, float] = {s: 0.0 for s in SERVICES} | (latency or {})
        self.max_in_flight: dict[str, int] = dict(max_in_flight or {})
        self.min_interval: dict[str, float] = {"semantic_scholar": 1.0, "openalex": 0.05} | (
            min_interval or {}
        )
        self.openalex_budget = openalex_budget
        self._openalex_lists = 0  # list requests admitted (what the daily budget counts)
        self.refusal_retry_after = refusal_retry_after
        self.windows: dict[str, tuple[int, float]] = {"hf_papers": (500, 300.0)} | (windows or {})
        self._window_used: dict[str, tuple[int, int]] = {}  # service -> (window number, used)
        self._epoch = time.monotonic()
        self.faults = FaultSet()
        self.quiet = quiet
        self._log: list[RequestRecord] = []
        self._lock = threading.RLock()  # predicates of wait_for may read the log under it
        self._changed = threading.Condition(self._lock)
        self._in_flight: dict[str, int] = {}
        self._admitted: dict[str, int] = {}
        self._last_start: dict[str, float] = {}
        self._gates: dict[str, threading.Event] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> StandIn:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self.host, self.port), make_handler(self))
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
        self.release()  # held requests must not outlive the server
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

    @property
    def syndication_url(self) -> str:
        return self.base_url + "/tweet-result"

    @property
    def semantic_scholar_url(self) -> str:
        return self.base_url + "/graph/v1/paper/batch"

    @property
    def openalex_url(self) -> str:
        return self.base_url + "/openalex"

    @property
    def hf_papers_url(self) -> str:
        return self.base_url + "/api/papers"

    @property
    def settings(self) -> dict[str, str]:
        """The crawler settings that point it at this stand-in."""
        return {
            "ARXIV_API_URL": self.arxiv_url,
            "OEMBED_URL": self.oembed_url,
            "SYNDICATION_URL": self.syndication_url,
            "SEMANTIC_SCHOLAR_URL": self.semantic_scholar_url,
            "HF_PAPERS_URL": self.hf_papers_url,
            "OPENALEX_URL": self.openalex_url,
        }

    # -- request log -------------------------------------------------------------------------

    @property
    def log(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def requests_for(self, service: str) -> list[RequestRecord]:
        return sorted((r for r in self.log if r.service == service), key=lambda r: r.start)

    def reset_log(self) -> None:
        """Forget every request, including the last start the rate limit compares with."""
        with self._lock:
            self._log.clear()
            self._last_start.clear()

    def max_concurrency(self, service: str) -> int:
        """Most requests the client had in flight at once (refused ones included)."""
        return max_concurrency(self.requests_for(service))

    def peak_admitted(self, service: str) -> int:
        """Most requests the stand-in served at once: never above ``max_in_flight``."""
        return peak_admitted(self.requests_for(service))

    def throttled_share(self, service: str) -> float:
        """Share of the service's requests refused by the in-flight cap or the rate limit."""
        return throttled_share(self.requests_for(service))

    def min_start_gap(self, service: str) -> float:
        return min_start_gap(self.requests_for(service))

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        """Block until ``predicate()`` holds, checked whenever a request arrives or ends.

        Tests wait on what the stand-in saw instead of sleeping; ``timeout`` only guards
        against a hang and returns False.
        """
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def hold(self, service: str, key: str | None = None) -> threading.Event:
        """Keep admitted requests of ``service`` waiting until the returned event is set.

        Lets a test pin requests in flight without sleeping; ``stop()`` releases them. With
        ``key`` (a request key, ``hf_papers:2106.09685``) only that request waits, on a gate of
        its own that wins over the service's: a test can let one answer out while the rest
        stay held, and so decide which answer the client sees first.
        """
        with self._lock:
            gate = self._gates[key or service] = threading.Event()
        return gate

    def release(self) -> None:
        """Let every held request go, and stop holding."""
        with self._lock:
            gates, self._gates = list(self._gates.values()), {}
        for gate in gates:
            gate.set()

    def in_flight(self, service: str) -> int:
        """Admitted requests of ``service`` being served right now."""
        with self._lock:
            return self._admitted.get(service, 0)

    # -- internals used by the handler ------------------------------------------------------

    def _connection_opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _connection_closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _admit(self, record: RequestRecord) -> None:
        """Stamp the start and decide, atomically, whether policy refuses the request."""
        service = record.service
        with self._changed:
            record.start = time.monotonic()
            self._in_flight[service] = record.concurrent = self._in_flight.get(service, 0) + 1
            admitted = self._admitted.get(service, 0)
            cap = self.max_in_flight.get(service)
            if cap is not None and admitted >= cap:
                record.refused = "max_in_flight"
            elif not self._in_window(record):
                record.refused = "rate_limit"
            else:
                previous = self._last_start.get(service)
                self._last_start[service] = record.start
                interval = self.min_interval.get(service, 0.0)
                if previous is not None and interval > 0 and record.start - previous < interval:
                    record.refused = "rate_limit"
                else:
                    self._admitted[service] = record.admitted = admitted + 1
            self._changed.notify_all()

    def _budget_spent(self, path: str) -> bool:
        """Counts an OpenAlex list request against the daily budget; True once it is spent."""
        if not openalex.is_list(path):
            return False  # single-work lookups are free
        with self._lock:
            self._openalex_lists += 1
            return self.openalex_budget is not None and self._openalex_lists > self.openalex_budget

    def _in_window(self, record: RequestRecord) -> bool:
        """Count the request in its service's fixed window; False when the window is spent.
        Windows are numbered from the stand-in's start; refused requests do not count."""
        window = self.windows.get(record.service)
        if window is None:
            return True
        quota, seconds = window
        number = int((record.start - self._epoch) // seconds)
        reset = max(1, math.ceil(self._epoch + (number + 1) * seconds - record.start))
        current, used = self._window_used.get(record.service, (number, 0))
        used = used if current == number else 0
        if used >= quota:
            record.window = (0, reset)
            return False
        self._window_used[record.service] = (number, used + 1)
        record.window = (quota - used - 1, reset)
        return True

    def _window_headers(self, record: RequestRecord, answer: Answer) -> dict[str, str]:
        """The IETF draft headers Hugging Face sends on every answer; a 429 says the window is
        spent (a scripted one: for a second, so chaos runs do not wait out 5 minutes)."""
        window = self.windows.get(record.service)
        if window is None or record.window is None:
            return {}
        left, reset = record.window
        if answer.status == 429 and record.refused is None:
            left, reset = 0, 1  # a scripted 429: a window spent by someone else, ending soon
        elif answer.status == 429:
            left = 0
        record.told = (left, reset)
        return {
            "RateLimit": f'"api";r={left};t={reset}',
            "RateLimit-Policy": f'"fixed window";"api";q={window[0]};w={int(window[1])}',
        }

    def _refusal(self, service: str) -> Answer:
        answer = status_answer(service, 403 if service == "openalex" else 429)
        answer.headers.update(retry_after(self.refusal_retry_after))
        return answer

    def _pass_gate(self, service: str, key: str) -> None:
        gate = self._gates.get(key) or self._gates.get(service)
        if gate is not None:
            gate.wait(timeout=60)

    def _finish(self, record: RequestRecord) -> None:
        with self._changed:
            self._in_flight[record.service] -= 1
            if record.admitted:
                self._admitted[record.service] -= 1
            self._log.append(record)
            self._changed.notify_all()
