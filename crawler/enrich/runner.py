"""One service's enrichment during a crawl: collect keys, batch them, ask, judge, store.

Generic over services. Keys arrive as the spider announces entries; full batches go at once;
a partial batch goes when input ends, or when no key arrived for ``batch_wait`` seconds and no
request of *any* service of the crawl is under way. Input stalls under backpressure while entries
wait for answers (arXiv's 3 s rule, a tweet service); once those come, records leave and keys
flow again, so a stall only means "nothing else will fill this batch" when nothing at all is
under way. (A per-service rule sent Semantic Scholar a partial batch at every arXiv pause: 17
requests where 11 suffice.) All HTTP goes through Scrapy's downloader
(``engine.download_async``): slots, the retry middleware's gates and backoff, stats.

An answer that turns a stored final value into "not found" (or "deleted", "protected") is
believed only when the service has shown it answers correctly: within the same answer for batch
services, within the crawl (or by probing one key an earlier run stored as good) for per-key
ones. Otherwise it is an incident: the stored values are kept, asked again next run, and the
run's exit status says enrichment was incomplete. The probe keeps "one request per key per
crawl": never a key this crawl asked or is asking for, and its answer is the fetch of its key
when an entry wants that key later.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest

from crawler.downloader.contract import AnswerUnusable
from crawler.enrich.memo import Memo, settled
from crawler.items import DigestEntry
from crawler.logredact import redact_url_secrets
from crawler.outcome import Outcome, failed_key
from crawler.services.base import BatchRefused, Service
from crawler.state.extension import State, utc_now_text
from crawler.state.store import StateError

logger = logging.getLogger(__name__)

V = TypeVar("V")


def failure_text(exc: BaseException) -> str:
    """A download failure as one short line for a record's ``error`` (no request dump)."""
    message = redact_url_secrets(str(exc).split(" in request <", 1)[0].strip())
    if len(message) > 200:
        message = message[:199] + "…"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _status(value: Any) -> str:
    return str(getattr(value, "status", "error"))


class ServiceRunner(Generic[V]):
    def __init__(
        self, service: Service[V], crawler: Crawler, state: State | None, outcome: Outcome
    ) -> None:
        self.service = service
        self.crawler = crawler
        self.stats = crawler.stats
        self.state = state
        self.outcome = outcome
        self.memo: Memo[V] = Memo(service, state)
        self.prefix = service.name
        self._queue: list[str] = []
        self._hints: dict[str, str | None] = {}
        self._requests = 0  # this service's requests under way (split halves included)
        # While no request of this service has been accepted, a refused batch is split depth
        # first: one half is sent, the other held until an answer is accepted. Two refused
        # single keys with nothing accepted: the service refuses every request (a changed
        # field, a key problem), so held halves get the error without requests, O(log n) in all.
        self._accepted = False
        self._waiting: list[list[str]] = []
        self._leaf_refusals = 0
        self._refuses_all: str | None = None
        self._input_done = False
        # The batch timer runs on the event loop; unit tests give it a virtual clock and put
        # that clock here too, so "idle for batch_wait" is measured on the same clock.
        self.clock: Callable[[], float] = time.monotonic
        self._last_key = self.clock()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Requests handed to the downloader at once; the retry middleware's limit does the
        # fine control (adaptive for the tweet services), this only bounds the queue there.
        self._permits = asyncio.Semaphore(service.politeness.slot_concurrency)
        # Evidence that the service answers correctly: an ok answer this crawl, or a probe.
        self._ok_seen = asyncio.Event()
        self._idle = asyncio.Event()  # input ended and nothing else of this service under way
        self._judging = 0  # answers waiting for that evidence
        self._probe: asyncio.Future[bool | None] | None = None
        # The probe's control key and its answer: if this crawl wants that key too, the
        # answer is its fetch (one request per key per crawl).
        self._control: tuple[str, asyncio.Future[dict[str, V] | None]] | None = None
        self._incident_logged = False
        # Keys answered by a single lookup, and whether any lookup answered ok this run: the
        # lookup is another endpoint than the batch, judged on its own evidence.
        self._looked_up: set[str] = set()
        self._lookup_ok = asyncio.Event()
        # The runners of the crawl (this one included), for the crawl-wide idle rule; the
        # pipeline sets it. Alone by default (unit tests of one service).
        self.peers: list[ServiceRunner[Any]] = [self]

    # -- collecting ---------------------------------------------------------------------------
    def want(self, entry: DigestEntry) -> None:
        for key in self.service.keys(entry):
            if key in self.memo.pending or not self._new(key):
                continue
            self.memo.start(key)
            self.stats.inc_value(f"{self.prefix}/keys_wanted")
            self._queue.append(key)
            self._hints.setdefault(key, self.service.hint(entry, key))
            self._last_key = self.clock()
        self._flush()

    def _new(self, key: str) -> bool:
        refused = self.service.refused_key(key)
        if refused is not None:
            self.memo.remember(key, refused)
            return False
        try:
            needed = self.memo.needs_fetch(key)
        except StateError as exc:
            self.outcome.stop_because(str(exc), reason="state_error")
            self.memo.remember(key, self.service.error("state database unusable"))
            return False
        if needed and self.outcome.stopping.is_set():
            # Nothing new is asked for once the crawl is stopping: it would only be waited for.
            message = f"{self.service.label} request not sent: crawl stopped"
            self.memo.remember(key, self.service.error(message))
            return False
        return needed

    def input_done(self) -> None:
        self._input_done = True
        self._flush()
        self._check_idle()

    def _check_idle(self) -> None:
        if self._input_done and not self._queue and not self._waiting and self.busy <= 0:
            self._idle.set()

    def _flush(self) -> None:
        size = self.service.batch_size
        while len(self._queue) >= size:
            self._send(self._queue[:size])
            del self._queue[:size]
        if not self._queue:
            return
        if self._input_done:
            self._send(self._queue[:])
            self._queue.clear()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self.service.batch_wait, self._on_timer
            )

    @property
    def busy(self) -> int:
        """This service's requests under way, not counting answers waiting to be judged (they
        wait for input to end, which a queued partial batch may be holding up)."""
        return self._requests - self._judging

    def _on_timer(self) -> None:
        self._timer = None
        idle = self.clock() - self._last_key >= self.service.batch_wait
        if self._queue and idle and not any(peer.busy > 0 for peer in self.peers):
            # Input has stalled and nothing under way will unblock it: what waits goes now.
            self._send(self._queue[:])
            self._queue.clear()
        self._flush()

    # -- fetching -----------------------------------------------------------------------------
    def _send(self, keys: list[str], refused: str | None = None) -> None:
        self._requests += 1
        task = asyncio.get_running_loop().create_task(self._fetch(keys, refused))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch(self, keys: list[str], refused: str | None = None) -> None:
        """Fetch and settle one batch; ``refused``: settle it as refused, without a request."""
        hints = {key: self._hints.pop(key, None) for key in keys}
        values: dict[str, V] | None
        try:
            values = await self._requested(keys, hints) if refused is None else None
            values = self._all(keys, refused) if refused is not None else values
            if values is not None:
                values = await self._settle(keys, values)
        except asyncio.CancelledError:
            values = self._all(keys, f"{self.service.label} request not completed: crawl stopped")
        except StateError as exc:
            self.outcome.stop_because(str(exc), reason="state_error")
            values = self._all(keys, "state database unusable")
        except Exception as exc:  # a bug must not leave entries waiting forever
            logger.error(
                "%s: batch failed unexpectedly: %s", self.service.label, failure_text(exc),
                exc_info=exc,
            )  # fmt: skip
            values = self._all(keys, f"internal error: {failure_text(exc)}")
            self.stats.inc_value(failed_key(self.service.name), len(keys))
        finally:
            self._requests -= 1
            if not self._requests:
                self._release_waiting()  # nothing under way will decide them: they go as usual
            self._check_idle()
        if values is None:
            return  # split: the halves resolve these keys
        for key in keys:
            self.stats.inc_value(f"{self.prefix}/values/{_status(values[key])}")
            self.memo.finish(key, values[key])
        if not self._requests:
            self._flush()

    async def _requested(
        self, keys: list[str], hints: dict[str, str | None]
    ) -> dict[str, V] | None:
        self.stats.inc_value(f"{self.prefix}/batches")
        self.stats.inc_value(f"{self.prefix}/keys_requested", len(keys))
        async with self._permits:
            probed = self._probe_answer_for(keys)
            values = await (
                asyncio.shield(probed) if probed is not None else self._ask(keys, hints)
            )
            if values is not None:
                values = await self._look_up_missing(keys, values)
        return values

    def _probe_answer_for(self, keys: list[str]) -> asyncio.Future[dict[str, V] | None] | None:
        """The probe's answer (on its way or in) when ``keys`` is its control key: asked once
        this crawl already, so that answer is the key's fetch. Probes are for per-key services,
        whose batches are one key."""
        control = self._control
        if control is None or keys != [control[0]]:
            return None
        self._control = None
        self.stats.inc_value(f"{self.prefix}/probe_answers_used")
        return control[1]

    def _all(self, keys: list[str], message: str) -> dict[str, V]:
        return {key: self.service.error(message) for key in keys}

    async def _look_up_missing(self, keys: list[str], values: dict[str, V]) -> dict[str, V]:
        """Keys the batch answer left out are asked for alone, one request each (OpenAlex's
        list filter misses preprints merged into their journal version; a single lookup finds
        them). A service without such lookups: the key is an error."""
        for key in keys:
            if key in values:
                continue
            request = self.service.lookup_request(key)
            if request is None:
                values[key] = self.service.error(f"{self.service.label} answer left {key} out")
                continue
            self.stats.inc_value(f"{self.prefix}/lookups")
            alone = await self._ask([key], {}, request)
            values[key] = (alone or {}).get(key) or self.service.error(
                f"{self.service.label} lookup of {key} gave no value"
            )
            self._looked_up.add(key)
            if _status(values[key]) == "ok":
                self._lookup_ok.set()
        return values

    async def _ask(
        self, keys: list[str], hints: dict[str, str | None], request: Request | None = None
    ) -> dict[str, V] | None:
        """Download ``request`` (by default the batch request for ``keys``) and map the answer
        to values; None when the batch was split (its halves resolve the keys)."""
        label = self.service.label
        if request is None:
            request = self.service.build_request(keys, hints)
        try:
            response = await self.crawler.engine.download_async(request)
        except IgnoreRequest as exc:
            return self._all(keys, f"{label} request dropped: {exc}")
        except Exception as exc:  # connection errors, timeouts, cut bodies, oversized answers
            return self._all(keys, f"{label} request failed: {failure_text(exc)}")
        try:
            values = self._stamped(self.service.values(keys, response))
        except BatchRefused as exc:
            return self._refused(keys, hints, exc)
        except AnswerUnusable as exc:
            return self._all(keys, f"{label} answer unusable: {exc}")
        except Exception as exc:  # an answer nobody foresaw (deep nesting, absurd dates, ...)
            logger.warning("%s: unexpected answer: %s", label, failure_text(exc))
            return self._all(keys, f"{label} answer unusable: {failure_text(exc)}")
        if 200 <= response.status < 300:  # accepted: refusals are not systematic
            self._accepted, self._refuses_all = True, None
            self._release_waiting()
        return values

    def _refused(
        self, keys: list[str], hints: dict[str, str | None], exc: BatchRefused
    ) -> dict[str, V] | None:
        """A refused batch is split so the rest are still enriched (None: its halves resolve
        the keys); a single key is its own error. Not split once the service refuses all."""
        label = self.service.label
        if self._refuses_all is not None:
            return self._all(keys, f"{self._refuses_all}: {exc}")
        if len(keys) == 1:
            if not self._accepted:
                self._leaf_refused(exc)
            return self._all(keys, f"{label} refused {keys[0]}: {exc}")
        self.stats.inc_value(f"{self.prefix}/batch_splits")
        half = len(keys) // 2
        parts = [keys[:half], keys[half:]]
        for part in parts:
            self._hints.update({key: hints.get(key) for key in part})
        if not self._accepted:
            self._waiting.append(parts.pop())  # depth first until something is accepted
        for part in parts:
            self._send(part)
        return None

    def _leaf_refused(self, exc: BatchRefused) -> None:
        """A single key refused with nothing accepted: its sibling is tried; a second one
        means the service refuses every request, and held keys get the error unasked."""
        self._leaf_refusals += 1
        if self._leaf_refusals < 2:
            if self._waiting:
                self._send(self._waiting.pop())
            return
        label = self.service.label
        self._refuses_all = f"{label} refused the request, as every request so far (not split)"
        logger.error(
            "%s refuses every request (%s): its refused batches are not split further",
            label, exc,
        )  # fmt: skip
        self.stats.inc_value(f"{self.prefix}/refuses_all")
        held, self._waiting = self._waiting, []
        for part in held:
            self._send(part, refused=f"{self._refuses_all}: {exc}")

    def _release_waiting(self) -> None:
        held, self._waiting = self._waiting, []
        for part in held:
            self._send(part)

    @staticmethod
    def _stamped(values: dict[str, V]) -> dict[str, V]:
        """Values from an answer carry when they were fetched: the record's ``fetched_at``."""
        now = utc_now_text(time.time())
        return {key: dataclasses.replace(v, fetched_at=now) for key, v in values.items()}  # type: ignore[type-var]

    # -- judging and storing ------------------------------------------------------------------
    async def _settle(self, keys: list[str], values: dict[str, V]) -> dict[str, V]:
        if any(_status(v) == "ok" for v in values.values()):
            self._ok_seen.set()
        stored: dict[str, V | None] = (
            self.state.stored_many(self.service, keys) if self.state else {}
        )
        held = await self._held(keys, values, stored)
        for key in held:
            if _status(stored.get(key)) in ("ok", *self.service.downgrades):
                continue  # the state keeps the stored value and marks it stale
            said = _status(values[key])
            values[key] = self.service.error(
                f"{self.service.label} answered '{said}', but showed no sign of answering "
                "correctly (a wrong endpoint? an incident?): not believed, asked again next run"
            )
        failed = sum(1 for key in keys if _status(values[key]) == "error" or key in held)
        if failed:
            self.stats.inc_value(failed_key(self.service.name), failed)
        if self.state is None:
            now = utc_now_text(time.time())
            return {
                key: self._one_point(value, getattr(value, "fetched_at", None) or now)
                for key, value in values.items()
            }
        return self.state.save(self.service, values, held)

    def _one_point(self, value: V, observed_at: str) -> V:
        point = self.service.observation(value, observed_at)
        return value if point is None else self.service.with_history(value, [point])

    async def _held(
        self, keys: list[str], values: dict[str, V], stored: dict[str, V | None]
    ) -> set[str]:
        """Keys whose negative answer ("not found", "deleted") is not believed: it contradicts
        a stored value, or is new, while the service shows no sign of answering correctly.
        A mistyped URL answers 404 for everything, and an incident empty feeds: neither may be
        stored for months, nor pass as a complete run."""
        known = {key: _status(v) for key, v in stored.items() if v is not None}
        known = {key: status for key, status in known.items() if status != "error"}
        # Any stored final answer counts, not only "ok": a mistyped URL answering 404 for
        # everything must not turn a tweet stored as protected into a deleted one either.
        suspects = {
            key
            for key in keys
            if _status(values[key]) in self.service.downgrades
            and known.get(key) != _status(values[key])
        }
        good = {key for key, status in known.items() if status == "ok"}
        # A lookup's negative answer contradicting a stored good value is believed only once
        # some lookup answered ok: the batch's answers say nothing about the lookup endpoint.
        lookups = suspects & self._looked_up & good
        held = set() if not lookups or await self._first_ok_or_idle(self._lookup_ok) else lookups
        suspects -= self._looked_up
        batch = [key for key in keys if key not in self._looked_up]
        if suspects and not await self._trusted(batch, values, good - self._looked_up):
            held |= suspects
        if not held:
            return set()
        suspects = held
        self.stats.inc_value(f"{self.prefix}/incidents", len(suspects))
        if not self._incident_logged:
            self._incident_logged = True
            example = next(iter(suspects))
            logger.warning(
                "%s answers '%s' (e.g. for %s) while showing no sign of answering correctly; "
                "stored values are kept, and the keys are asked again next run",
                self.service.label, _status(values[example]), example,
            )  # fmt: skip
        return suspects

    async def _trusted(self, keys: list[str], values: dict[str, V], good: set[str]) -> bool:
        if self.service.judge_per_answer:
            # Within the answer: a stored good key still found, or any key found, or a lone
            # new key (arXiv's normal answer for an ID it does not have).
            if good:
                return any(_status(values[key]) == "ok" for key in good)
            return len(keys) == 1 or any(_status(values[key]) == "ok" for key in keys)
        if self._ok_seen.is_set():
            return True
        if self._probe is None:
            self._probe = asyncio.ensure_future(self._probe_control(set(keys)))
        healthy = await asyncio.shield(self._probe)
        if healthy or self._ok_seen.is_set():  # a good answer while the probe was out counts
            return True
        return False if healthy is False else await self._first_ok_or_idle()

    async def _first_ok_or_idle(self, ok: asyncio.Event | None = None) -> bool:
        """Nothing stored to probe with (a first run): wait for this crawl's first ok answer
        (by default any; ``ok`` for one endpoint's), or until the service has nothing else
        under way."""
        ok = self._ok_seen if ok is None else ok
        if ok.is_set():
            return True
        self._judging += 1
        try:
            self._check_idle()
            waits = [asyncio.ensure_future(e.wait()) for e in (ok, self._idle)]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
            return ok.is_set()
        finally:
            self._judging -= 1

    async def _probe_control(self, exclude: set[str]) -> bool | None:
        """Ask once for a key an earlier run stored as good: if the service still finds it,
        it is healthy; if it says that key is gone too, it is not. None when there is no such
        key, or the probe got no answer (an error says nothing either way). Never a key this
        crawl asked or is asking for: its answer is the evidence, or on its way (asking again
        sent a second request for one paper)."""
        if self._ok_seen.is_set():
            return True  # an ok answer came before the probe started: no request needed
        if self.state is None:
            return None
        control = self.state.control_key(self.service, exclude | self.memo.pending.keys())
        if control is None:
            return None
        self.stats.inc_value(f"{self.prefix}/probes")
        asked = asyncio.ensure_future(self._ask([control], {}))
        self._control = (control, asked)
        answer = await asyncio.shield(asked)
        status = "error" if answer is None else _status(answer.get(control))
        if status == "ok":
            self._ok_seen.set()
            return True
        return None if status == "error" else False

    # -- filling entries ----------------------------------------------------------------------
    def claim(self, entry: DigestEntry) -> dict[str, V | asyncio.Future[V]]:
        """Each of the entry's keys: its value now, or the future that brings it. A key not
        announced by the spider, or stale since, is wanted here, as the entry arrives."""
        claimed: dict[str, V | asyncio.Future[V]] = {}
        for key in self.service.keys(entry):
            if key in claimed:
                continue
            got = self._now(key)
            if got is None:
                self.want(entry)
                got = self._now(key)
            claimed[key] = got if got is not None else self.service.error("not fetched")
        return claimed

    async def fill(
        self, entry: DigestEntry, claimed: dict[str, V | asyncio.Future[V]] | None = None
    ) -> None:
        """The entry's values put in, once every one of them has come (``claimed``: what
        :meth:`claim` gave when the entry arrived)."""
        claimed = self.claim(entry) if claimed is None else claimed
        values: dict[str, V] = {}
        for key, got in claimed.items():
            value = await settled(got)
            values[key] = value if value is not None else self.service.error("not fetched")
        self.service.attach(entry, values)

    def _now(self, key: str) -> V | asyncio.Future[V] | None:
        try:
            return self.memo.now(key)
        except StateError as exc:  # the entry still becomes a record, saying why it is bare
            self.outcome.stop_because(str(exc), reason="state_error")
            return self.service.error("state database unusable")

    def stop(self) -> None:
        """The crawl is stopping: nothing waits for a batch that will never go."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        label = self.service.label
        queued, self._queue = self._queue, []
        for key in queued:
            self.memo.finish(key, self.service.error(f"{label} request not sent: crawl stopped"))
        # Every key still waiting is resolved here, not by its task: a task cancelled before
        # its first step never runs its own handlers.
        for key in list(self.memo.pending):
            message = f"{label} request not completed: crawl stopped"
            self.memo.finish(key, self.service.error(message))
        for task in list(self._tasks):
            task.cancel()
