"""What a service module provides: everything about one upstream, nothing about Scrapy's flow.

A service says which keys an entry needs (arXiv IDs, tweet IDs), how to ask for a batch of them,
whether a 200 answer is usable, how an answer maps to values (dataclasses with a ``status``),
how those values go into the entry, how polite to be and how long a value stays fresh. The
generic machinery (``crawler.enrich``, ``crawler.downloader``, ``crawler.state``) does the rest.
Adding a service is one module plus one line in :mod:`crawler.services.registry`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from scrapy import Request
from scrapy.http import Response
from scrapy.settings import BaseSettings

from crawler.downloader.contract import PARSED, AnswerUnusable, Politeness
from crawler.items import DigestEntry
from crawler.logredact import redact_url_secrets
from crawler.parsing.text import replace_surrogates
from crawler.sources import printable, url_problem, without_userinfo

V = TypeVar("V")

DAY = 86400.0
INT64_MAX = 2**63 - 1  # SQLite INTEGER, Parquet int64, DuckDB BIGINT: nothing wider is stored
# The ranges an integer from a service may take, by what it is (record.schema.json agrees).
BOUNDS: dict[str, tuple[int, int]] = {
    "count": (0, INT64_MAX),
    "year": (1000, 9999),  # four digits
    "version": (1, INT64_MAX),
}


class BatchRefused(ValueError):
    """The service refused the request as a whole for something in it (arXiv's 400 error
    feed): a batch of several keys is split so one bad key costs only itself."""


class SettingsProblem(ValueError):
    """Settings a crawl cannot run with; one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def number_problems(settings: BaseSettings, spec: Mapping[str, tuple[type, float]]) -> list[str]:
    """One line per setting in ``spec`` that is not a finite number at least its lowest value.

    NaN and infinity are refused: ``ARXIV_DELAY=nan`` would send requests back to back, and an
    infinite delay would hang the crawl.
    """
    problems = []
    for name, (kind, lowest) in spec.items():
        try:
            value = (settings.getint if kind is int else settings.getfloat)(name)
        except (TypeError, ValueError):
            problems.append(f"{name} must be a number, not {settings.get(name)!r}")
            continue
        if not math.isfinite(value):
            problems.append(f"{name} must be a finite number, not {settings.get(name)!r}")
        elif value < lowest:
            problems.append(f"{name} must be at least {lowest}, not {value}")
    return problems


def url_problems(settings: BaseSettings, name: str) -> list[str]:
    """A service's endpoint must be an http(s) URL a request can be built from: one that is
    not (an undecodable byte, a port out of range) failed every request of the service."""
    value = settings.get(name)
    if not isinstance(value, str) or not value.lower().startswith(("http://", "https://")):
        return [redact_url_secrets(f"{name} must be an http(s) URL, not {value!r}")]
    shown = without_userinfo(value)
    if problem := url_problem(value) or url_problem(shown):  # an api_key= stays masked
        return [f"{name} {redact_url_secrets(printable(shown))}: {problem}"]
    return []


class Service(ABC, Generic[V]):
    name: ClassVar[str]  # downloader slot, stats keys, request meta
    label: ClassVar[str]  # how messages name it
    kind: ClassVar[str]  # what it fills: state kind ("arxiv", "embed", "impact", ...)
    record_block: ClassVar[str]  # the record's block it fills ("arxiv", "semantic_scholar", ...)
    value_type: ClassVar[type[Any]]  # a dataclass with ``status`` and ``error``
    url_setting: ClassVar[str]
    enabled_setting: ClassVar[str | None] = None  # a bool setting that turns it off
    refresh_names: ClassVar[tuple[str, ...]] = ()  # `-a refresh=<name>` fetches it again
    ttl_days: ClassVar[dict[str, float]] = {}  # default days a stored value stays good, by status
    # Negative statuses, believed only once the service has shown it answers correctly (a
    # mistyped URL gives 404 for everything; an incident, empty feeds), whether they would
    # replace a stored value or be the first one stored.
    downgrades: ClassVar[frozenset[str]] = frozenset({"not_found"})
    # Batch services judge a downgrade within one answer (some stored-ok key must stay ok);
    # per-key services within the crawl (some answer must have been ok, or a probe).
    judge_per_answer: ClassVar[bool] = False
    numbers: ClassVar[dict[str, tuple[type, float]]] = {}  # settings checked as numbers
    # Fields that move all the time (counts): not changes for the change feed.
    volatile: ClassVar[tuple[str, ...]] = ()
    # The int setting capping the observations kept per key (services with a history).
    history_max_setting: ClassVar[str] = "DETAILS_HISTORY_MAX"
    # Every integer field of ``value_type`` and its kind in :data:`BOUNDS`: checked when an
    # answer is parsed and again when a stored value is read (tests check none is missing).
    integers: ClassVar[dict[str, str]] = {}

    batch_size: int = 1
    batch_wait: float = 0.0
    politeness: Politeness
    # (requests, seconds) of the service's rate-limit window as documented, for the ETA until
    # its RateLimit-Policy header says otherwise; None: no window.
    expected_window: tuple[int, float] | None = None

    def __init__(self, settings: BaseSettings) -> None:
        # A service turned off is built only for its "disabled" values: its settings may be unset.
        if self.enabled(settings) and (problems := self.settings_problems(settings)):
            raise SettingsProblem(problems)
        self.url = settings.get(self.url_setting)
        self.history_max = max(1, settings.getint(self.history_max_setting, 365))
        overrides = settings.getdict("STATE_TTL_DAYS")
        self.ttl_by_status = {
            **self.ttl_days,
            **{
                name.split("/", 1)[1]: float(days)
                for name, days in overrides.items()
                if name.startswith(f"{self.kind}/")
            },
        }

    @classmethod
    def settings_problems(cls, settings: BaseSettings) -> list[str]:
        return url_problems(settings, cls.url_setting) + number_problems(settings, cls.numbers)

    @classmethod
    def enabled(cls, settings: BaseSettings) -> bool:
        return cls.enabled_setting is None or settings.getbool(cls.enabled_setting)

    # -- what an entry needs, and how to ask -----------------------------------------------
    @abstractmethod
    def keys(self, entry: DigestEntry) -> list[str]:
        """The keys this entry needs values for, in entry order (may repeat)."""

    def refused_key(self, key: str) -> V | None:
        """A value for a key that must never be sent (it would fail a whole batch)."""
        return None

    def hint(self, entry: DigestEntry, key: str) -> str | None:
        """Something the request for ``key`` should carry from the entry that first wanted it
        (oEmbed: the tweet URL as linked)."""
        return None

    @abstractmethod
    def build_request(self, keys: list[str], hints: Mapping[str, str | None]) -> Request: ...

    def lookup_request(self, key: str) -> Request | None:
        """A request of its own for a key that a batch answer left out (OpenAlex: a preprint
        merged into its journal version), or None: such a key is an error."""
        return None

    def check(self, request: Request, response: Response) -> Any:
        """Parse a 200 answer, or raise ``AnswerUnusable`` (retried): an answer that does not
        parse, or that is about something other than what was asked (a cache ignoring the
        query string serves one body for every request)."""
        parsed = self.parse(request, response)
        keys = request.meta.get("keys") or []
        if parsed is not None and (problem := self.about_other(keys, parsed)):
            raise AnswerUnusable(problem)
        return parsed

    @abstractmethod
    def parse(self, request: Request, response: Response) -> Any:
        """A 200 answer parsed, or ``AnswerUnusable``; None when :meth:`values` decides."""

    @abstractmethod
    def about_other(self, keys: list[str], parsed: Any) -> str | None:
        """Why a parsed answer is not about the ``keys`` asked (it names another), or None.

        Required of every service: an answer is only used once it names what was asked."""

    def parsed(self, response: Response) -> Any:
        """The answer as :meth:`check` parsed it in the downloader, or parsed now."""
        parsed = response.meta.get(PARSED)
        if parsed is not None:
            return parsed
        assert response.request is not None  # set on every answer the downloader returns
        return self.check(response.request, response)

    @abstractmethod
    def values(self, keys: list[str], response: Response) -> dict[str, V]:
        """One value per key from an answer of any status; raises :class:`BatchRefused` or
        ``AnswerUnusable``. A key left out is asked again alone (:meth:`lookup_request`)."""

    # -- values -----------------------------------------------------------------------------
    def error(self, message: str) -> V:
        # value_type is the service's dataclass, typed type[Any] (a ClassVar cannot hold V)
        return self.value_type(status="error", error=message)  # type: ignore[no-any-return]

    def disabled(self) -> V:
        return self.value_type(status="disabled")  # type: ignore[no-any-return]  # as in error()

    @abstractmethod
    def attach(self, entry: DigestEntry, values: Mapping[str, V]) -> None:
        """Put the values for :meth:`keys` into the entry."""

    def comparable(self, value: V) -> dict[str, Any]:
        """The fields whose change goes into the change feed: all but the ``volatile`` ones."""
        # A shallow dict of the fields: compared and encoded, never changed in place, so
        # ``asdict``'s deep copy bought nothing (values hold no nested dataclasses).
        data = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}  # type: ignore[arg-type]  # V: a dataclass
        for name in (*self.volatile, "fetched_at"):  # when it was fetched is not a change
            data.pop(name, None)
        return data

    def observation(self, value: V, observed_at: str) -> dict[str, Any] | None:
        """A point of the value's history, kept across runs (None: no history)."""
        return None

    def with_history(self, value: V, history: list[dict[str, Any]]) -> V:
        return value

    def ttl(self, value: V, now: float, key: str = "") -> float:
        """Seconds a stored value stays good (0: always fetched again); ``key`` is what it was
        fetched for (a paper's ID tells its age)."""
        return self.ttl_by_status.get(getattr(value, "status", "error"), 0.0) * DAY

    def ttl_steady_until(self, value: V, now: float, key: str = "") -> float:
        """Until when :meth:`ttl` gives what it gives at ``now`` (a TTL by age changes as the
        value ages): how long a rerun may trust that nothing went stale."""
        return math.inf

    def decode(self, data: dict[str, Any]) -> V:
        """A stored value back from JSON; fields a newer version added are ignored."""
        known = {f.name for f in dataclasses.fields(self.value_type)}
        value = self.value_type(**{k: v for k, v in data.items() if k in known})
        # A value stored before ranges were checked (2^63 likes) would fail every dataset build
        # for as long as it stays fresh: out of range, it is read as unreadable (fetched again).
        for name, kind in self.integers.items():
            checked_int(getattr(value, name), name, kind)
        return value  # type: ignore[no-any-return]  # value_type: see error()


def age_table(settings: BaseSettings, name: str) -> list[tuple[float, float]]:
    """A TTL-by-age setting (``DETAILS_TTL_BY_AGE``, ``PAPER_TTL_BY_AGE``) as sorted
    (max age, TTL) pairs in days; given with ``-s`` it is JSON text."""
    raw = settings.get(name)
    rows = json.loads(raw) if isinstance(raw, str) else raw
    return sorted((float(age), float(days)) for age, days in rows)


def age_table_problems(settings: BaseSettings, name: str) -> list[str]:
    try:
        rows = age_table(settings, name)
    except (TypeError, ValueError):
        return [f"{name} must be a list of [age days, TTL days] pairs"]
    if any(not (math.isfinite(a) and math.isfinite(d) and a >= 0 and d >= 0) for a, d in rows):
        return [f"{name} needs finite numbers of days >= 0"]
    return []


def age_row_ends(rows: list[tuple[float, float]], age_days: float, born: float) -> float:
    """When something born at ``born`` (Unix time), ``age_days`` old, leaves its row of a
    TTL-by-age table (never, past the last row)."""
    for max_age, _days in rows:
        if age_days <= max_age:
            return born + max_age * DAY
    return math.inf


def ttl_for_age(rows: list[tuple[float, float]], age_days: float) -> float | None:
    """TTL seconds from the first row whose age covers ``age_days``; None past the last row
    (the service's per-status TTL applies)."""
    for max_age, days in rows:
        if age_days <= max_age:
            return days * DAY
    return None


# YYMM of a new-style (2106.09685) or old-style (hep-th/9901001) arXiv ID.
_ID_MONTH = re.compile(r"(?:^|/)(?P<yy>\d{2})(?P<mm>0[1-9]|1[0-2])(?:\.\d{4,5}$|\d{3}$)")


def paper_age_days(arxiv_id: str, now: float) -> float | None:
    """Days since the start of the month the arXiv ID was issued in (its YYMM), or None.

    Papers gather attention while young and barely move once old, so the services that
    refresh per paper (Semantic Scholar, OpenAlex, Hugging Face) set their TTLs by this age
    (``PAPER_TTL_BY_AGE``). Old-style IDs run from 1991 (``91..99``, then ``00..07``).
    """
    start = paper_born(arxiv_id)
    return None if start is None else max(0.0, (now - start) / DAY)


def paper_born(arxiv_id: str) -> float | None:
    """The start of the month the arXiv ID was issued in (Unix time), or None."""
    m = _ID_MONTH.search(arxiv_id)
    if m is None:
        return None
    yy = int(m["yy"])
    year = 1900 + yy if yy >= 91 else 2000 + yy
    return datetime(year, int(m["mm"]), 1, tzinfo=UTC).timestamp()


class PaperAgeTTL:
    """``ok`` values of a per-paper service go stale by the paper's age (``PAPER_TTL_BY_AGE``:
    a paper in its first month daily, a three-year-old one monthly); past the table, and for
    other statuses, the service's per-status TTL."""

    def __init__(self, settings: BaseSettings) -> None:
        self.rows = age_table(settings, "PAPER_TTL_BY_AGE")

    def ttl(self, key: str, now: float) -> float | None:
        age = paper_age_days(key, now)
        return None if age is None else ttl_for_age(self.rows, age)

    def steady_until(self, status: str, key: str, now: float) -> float:
        """Until when an ``ok`` value's TTL stays what it is at ``now``."""
        born = paper_born(key)
        if status != "ok" or born is None:
            return math.inf
        return age_row_ends(self.rows, max(0.0, (now - born) / DAY), born)


def default_ttls(services: list[type[Service[Any]]]) -> dict[str, float]:
    return {
        f"{service.kind}/{status}": days
        for service in services
        for status, days in service.ttl_days.items()
    }


def clean_str(value: object) -> str | None:
    """A JSON string as the record may carry it: None stays None, anything not a string is a
    shape error (ValueError), and lone surrogates (``"\\ud800"`` in JSON) become U+FFFD, since
    they cannot be written as UTF-8."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return replace_surrogates(value)


def checked_int(value: object, name: str, kind: str) -> int | None:
    """A JSON integer a service answered (or the state holds): None stays None; anything not
    an integer (``true`` included) or outside ``BOUNDS[kind]`` is a ValueError naming ``name``.

    Every service parses its integers with this, so a value no table can hold (a count of
    10^20, a year of 10^12) is an unusable answer and never stored as good."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} is not an integer")
    lowest, highest = BOUNDS[kind]
    if not lowest <= value <= highest:
        text = str(value)
        shown = text if len(text) <= 24 else f"{text[:20]}… ({len(text)} digits)"
        raise ValueError(f"{name} {shown} is out of range ({lowest}..{highest})")
    return value
