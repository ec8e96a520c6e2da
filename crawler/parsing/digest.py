"""A "Hot Papers" digest (Markdown + YAML front matter) -> post and entries. No crawl needed.

Damage is reported, not fatal: every problem becomes a :class:`Problem` with a line number and
parsing goes on with what can be read. Only input with nothing to read raises :class:`DigestError`.
Every step is linear in the size of the input, so a hostile file costs time in proportion to its
size, and ``max_entries`` bounds the work per digest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse

import yaml

from crawler.items import DigestEntry, Post, Tweet
from crawler.parsing.arxiv_ids import ArxivId, MalformedArxivId, arxiv_id_from_url
from crawler.parsing.text import (
    DecodeError,
    decode_bytes,
    join_surrogates,
    repair_mojibake,
    squash_ws,
)
from crawler.parsing.tweets import TweetParseError, parse_blockquote

MAX_ENTRIES = 1000  # the real blog has 10 to 30 entries a digest
FRONT_MATTER_MAX = 65536  # characters; the real front matter is about 300


class DigestError(ValueError):
    """Nothing in this input can be read as a digest."""


@dataclass(slots=True)
class Problem:
    line: int | None
    message: str
    severity: str = "warning"  # or "error": something the post says was lost


@dataclass(slots=True)
class Digest:
    post: Post
    entries: list[DigestEntry]
    problems: list[Problem] = field(default_factory=list)


# Characters that are invisible but would keep a line from starting with '#' or '-'.
_INVISIBLE = "\ufeff\u200b\u200c\u200d\u2060"
_STRIP = f" \t\r\f\v{_INVISIBLE}"
_FENCE_RE = re.compile(r"^-{3,}[ \t\r]*$", re.M)
# Harmless variants of '# N. Title' count as headings: leading blanks or invisible characters,
# '##' and deeper, '# N)'. A heading that is not seen would merge two entries.
_HEADING_RE = re.compile(
    rf"^[ \t{_INVISIBLE}]*#{{1,6}}[ \t{_INVISIBLE}]*(?P<rank>\d{{1,9}})[.)](?P<title>[^\n]*)",
    re.M,
)
_COUNTS_RE = re.compile(
    r"^-\s*retweets:\s*(?P<rt>\d{1,12})\s*,\s*favorites:\s*(?P<fav>\d{1,12})"
    r"(?:\s*\((?P<mo>\d{2})/(?P<d>\d{2})/(?P<y>\d{4})\s+(?P<t>\d{2}:\d{2}:\d{2})\))?"
)
_LINKS_RE = re.compile(r"^-\s*links:", re.I)
# Labels hold no brackets and URLs no parentheses, so a line of '[' or '(' stays linear.
_MD_LINK_RE = re.compile(r"\[(?P<label>[^\[\]\n]*)\]\((?P<url>[^()\s]*)\)")
_CATEGORY_LINK_RE = re.compile(
    r"\[(?P<cat>[^\[\]\n]{1,100})\]\(https?://(?:www\.)?arxiv\.org/list/[^()\s]{0,200}\)"
)
_ARXIV_LINK_RE = re.compile(r"https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/[^\s?#()\[\]]+")
# Opening tags are bounded ({0,500}) so hostile input ("<blockquote " repeated) stays linear.
_BLOCKQUOTE_RE = re.compile(
    r"<blockquote\b(?P<attrs>[^>]{0,500})>.*?(?:</blockquote>|\Z)", re.S | re.I
)
_SCRIPT_RE = re.compile(r"<script\b[^>]{0,500}>.*?(?:</script>|\Z)", re.S | re.I)
_DATE_RE = re.compile(
    r"^(?P<d>\d{4}-\d{2}-\d{2})(?:[T ](?P<t>\d{2}:\d{2}(?::\d{2})?)(?:\.\d*)?"
    r"\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?)?$"
)
_MISSING_HEADING = "is a '# N.' heading missing above it?"


def iso_utc(value: object) -> str | None:
    """Front matter dates (``2021-01-04T10:51:45.Z``, YAML timestamps, dates) -> ISO 8601 UTC."""
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        try:
            dt = dt.astimezone(UTC)
        except (OverflowError, ValueError):
            return None
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if 1000 <= dt.year <= 9999 else None
    if isinstance(value, date):
        return value.strftime("%Y-%m-%dT00:00:00Z") if 1000 <= value.year <= 9999 else None
    if not isinstance(value, str):
        return None
    m = _DATE_RE.match(value.strip())
    if not m:
        return None
    t = m["t"] or "00:00:00"
    tz = m["tz"] or "Z"
    try:
        dt = datetime.fromisoformat(f"{m['d']}T{t}{'+00:00' if tz == 'Z' else tz}")
    except (ValueError, OverflowError):
        return None
    return iso_utc(dt)


def _slug_from_source(source: str) -> str:
    path = urlparse(source).path if "://" in source else source
    return PurePosixPath(path.replace("\\", "/")).stem or "digest"


# --- front matter -----------------------------------------------------------------------------


def _timestamp_or_text(loader: yaml.constructor.SafeConstructor, node: yaml.Node) -> object:
    try:
        return loader.construct_yaml_timestamp(node)  # type: ignore[arg-type]
    except (ValueError, OverflowError):
        return loader.construct_scalar(node)  # type: ignore[arg-type]


class _PySafeLoader(yaml.SafeLoader):
    """PyYAML's own safe loader, whose impossible timestamps (``2021-02-30``) stay text: YAML's
    constructor raised for the whole document, and one bad date cost every other field."""


_SAFE_LOADER: type[Any] = _PySafeLoader
if hasattr(yaml, "CSafeLoader"):

    class _CSafeLoader(yaml.CSafeLoader):
        """The same on libyaml: the front matter is read twice (events, then values) in C."""

    _SAFE_LOADER = _CSafeLoader
_LOADERS: list[type[Any]] = [_PySafeLoader, _SAFE_LOADER]
for _loader in _LOADERS:  # twice the same one without libyaml: harmless
    _loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)

# libyaml refuses an escape of a surrogate (``"\\ud83d"``) as invalid; PyYAML reads it.
_LIBYAML_REFUSES = "found invalid Unicode character escape code"


class _AliasError(yaml.YAMLError):
    def __init__(self, mark: Any) -> None:
        super().__init__("front matter uses YAML aliases")
        self.problem_mark = mark


def _load_with(raw: str, loader: type[Any]) -> Any:
    """Load YAML with a safe loader, refusing alias events before anything is built: 40 KB of
    nested aliases expand into gigabytes, and no digest needs them."""
    for event in yaml.parse(raw, Loader=loader):
        if isinstance(event, yaml.AliasEvent):
            raise _AliasError(event.start_mark)
    return yaml.load(raw, Loader=loader)


def _safe_load(raw: str) -> Any:
    """The front matter as the usual loader reads it (libyaml when installed). Where libyaml
    refuses escapes of surrogates (``"\\ud83d\\ude00"``, how some writers spell an emoji),
    the pure-Python loader reads it again, about ten times slower, only then: both installs
    give the same post (the pair its character, a lone one U+FFFD with a warning) instead of
    one losing the whole front matter."""
    try:
        return _load_with(raw, _SAFE_LOADER)
    except yaml.YAMLError as exc:
        if _SAFE_LOADER is _PySafeLoader or getattr(exc, "problem", None) != _LIBYAML_REFUSES:
            raise
        refused = exc
    try:
        return _load_with(raw, _PySafeLoader)
    except (yaml.YAMLError, ValueError):
        # libyaml says the same of an escape past U+10FFFF, which PyYAML refuses without a
        # position (a ValueError from chr()): libyaml's error names the line.
        raise refused from None


@dataclass(slots=True)
class _FrontMatter:
    meta: dict[Any, Any]
    body_start: int  # where the entries begin
    valid: bool  # present, readable and a mapping: the file is a digest even without entries
    raw: str = ""  # the YAML between the fences
    first_line: int = 1  # the line ``raw`` starts on

    def line_of(self, key: str) -> int:
        """The line of the top-level ``key:``, for a message about its value (1 if unseen)."""
        found = re.search(rf"^{re.escape(key)}[ \t]*:", self.raw, re.M)
        return self.first_line + self.raw.count("\n", 0, found.start()) if found else 1


def _load_yaml(raw: str, first_line: int, problems: list[Problem]) -> dict[Any, Any] | None:
    """The front matter as a mapping; None (and one problem) if it cannot be used."""
    try:
        meta = _safe_load(raw)
    except _AliasError as exc:
        problems.append(Problem(first_line + exc.problem_mark.line, f"{exc}; ignored"))
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = first_line + mark.line if mark is not None else first_line
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problems.append(Problem(line, f"invalid YAML front matter ({reason})"))
        return None
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. date: 2021-13-45
        problems.append(Problem(first_line, f"invalid YAML front matter ({exc})"))
        return None
    if not isinstance(meta, dict):
        problems.append(Problem(first_line, "front matter is not a mapping; ignored"))
        return None
    return meta


def _front_matter(text: str, limit: int, problems: list[Problem]) -> _FrontMatter:
    opening = _FENCE_RE.match(text)
    if not opening:
        problems.append(Problem(1, "no YAML front matter; post fields taken from the file name"))
        return _FrontMatter({}, 0, valid=False)
    closing = _FENCE_RE.search(text, opening.end())
    if closing is None:
        problems.append(Problem(1, "front matter is never closed by '---'"))
        return _FrontMatter({}, opening.end(), valid=False)
    raw = text[opening.end() : closing.start()]
    if len(raw) > limit:
        line = 1 + raw.count("\n", 0, limit)
        problems.append(Problem(line, f"front matter is longer than {limit} characters; ignored"))
        return _FrontMatter({}, closing.end(), valid=False)
    meta = _load_yaml(raw, 1, problems)
    first_line = 1 + text.count("\n", 0, opening.end())
    return _FrontMatter(meta or {}, closing.end(), bool(meta), raw, first_line)


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _texts(front: _FrontMatter, key: str, values: list[Any], problems: list[Problem]) -> list[str]:
    """Front matter values as text the record can carry. PyYAML without libyaml reads
    ``"\\ud83d\\ude00"`` as two lone surrogates, which no UTF-8 writer takes (the posts list
    failed on them): a pair becomes its character, a lone one U+FFFD, with one warning."""
    texts = [join_surrogates(str(value)) for value in values]
    if replaced := sum(n for _, n in texts):
        problems.append(
            Problem(
                front.line_of(key),
                f"front matter {key}: {replaced} lone surrogate{'s' if replaced > 1 else ''} "
                "(not text) became U+FFFD",
            )
        )
    return [text for text, _ in texts]


def _text(front: _FrontMatter, key: str, problems: list[Problem]) -> str | None:
    value = front.meta.get(key)
    return None if value is None else _texts(front, key, [value], problems)[0]


def _post(front: _FrontMatter, source: str, encoding: str, problems: list[Problem]) -> Post:
    """The post's fields, each read on its own: a bad one is reported and the rest kept."""
    meta = front.meta
    title = _text(front, "title", problems)
    raw_tags = meta.get("tags") or []
    tags = _texts(front, "tags", raw_tags if isinstance(raw_tags, list) else [raw_tags], problems)
    post_date = iso_utc(meta.get("date"))
    if meta and post_date is None:
        shown = _str_or_none(meta.get("date"))
        problems.append(
            Problem(
                front.line_of("date"), f"front matter date {shown!r} is not a valid date; ignored"
            )
            if shown is not None
            else Problem(1, "front matter has no date")
        )
    return Post(
        source=source,
        slug=_text(front, "slug", problems) or _slug_from_source(source),
        title=repair_mojibake(title) if title else None,
        published_at=post_date,
        tags=tags,
        category=_text(front, "category", problems),
        encoding=encoding,
    )


# --- one entry --------------------------------------------------------------------------------

_Report = Callable[..., None]  # (relative line, message, severity="warning")


def _tweets(block: str, report: _Report) -> tuple[list[Tweet], str]:
    """Tweets of an entry's block, and the block without its blockquotes and scripts.

    Removed markup leaves its newlines behind, so prose lines keep their line numbers.
    """
    tweets: list[Tweet] = []
    line = pos = 0
    for m in _BLOCKQUOTE_RE.finditer(block):
        if "twitter-tweet" not in m["attrs"]:
            continue
        line += block.count("\n", pos, m.start())
        pos = m.start()
        markup = m.group(0)
        if not markup.lower().rstrip().endswith("</blockquote>"):
            report(line, "tweet blockquote is cut off")
        try:
            tweets.append(parse_blockquote(markup))
        except TweetParseError as exc:
            report(line, str(exc), "error")

    def keep_lines(m: re.Match[str]) -> str:
        return "\n" * m.group(0).count("\n")

    return tweets, _SCRIPT_RE.sub(keep_lines, _BLOCKQUOTE_RE.sub(keep_lines, block))


def _classify(text: str) -> str:
    """What a stripped, non-empty line of an entry is."""
    if _COUNTS_RE.match(text):
        return "counts"
    if _LINKS_RE.match(text):
        return "links"
    if text.startswith("-") and _CATEGORY_LINK_RE.search(text):
        return "categories"
    return "text"


@dataclass(slots=True)
class _Lines:
    """What an entry's prose lines say. The first counts, links and category lines win: later
    ones belong to an entry whose heading was not seen, and are reported, not absorbed."""

    report: _Report
    authors: str | None = None
    counts: re.Match[str] | None = None
    links_line: int | None = None
    abs_url: str | None = None
    pdf_url: str | None = None
    categories: list[str] | None = None
    abstract: list[str] = field(default_factory=list)
    paper: str | None = None  # the first arXiv ID linked outside tweets
    warned: bool = False

    def read(self, prose: str) -> None:
        for rel, raw in enumerate(prose.split("\n")):
            text = raw.strip(_STRIP)
            if text:
                kind = _classify(text)
                getattr(self, f"_{kind}")(rel, text)
                self._papers(rel, text)

    def _counts(self, rel: int, text: str) -> None:
        self.counts = self.counts or _COUNTS_RE.match(text)

    def _links(self, rel: int, text: str) -> None:
        if self.links_line is not None:
            self._warn(rel, "second links line here")
            return
        self.links_line = rel
        for link in _MD_LINK_RE.finditer(text):
            label = link["label"].strip().lower()
            if label == "abs":
                self.abs_url = link["url"]
            elif label == "pdf":
                self.pdf_url = link["url"]

    def _categories(self, rel: int, text: str) -> None:
        if self.categories is None:
            self.categories = [c["cat"].strip() for c in _CATEGORY_LINK_RE.finditer(text)]

    def _text(self, rel: int, text: str) -> None:
        if self.authors is None and self.counts is None and self.links_line is None:
            self.authors = text
        elif text.startswith("- ") and not self.abstract:
            self.report(rel, f"unrecognised line {text[:60]!r}")
        else:
            self.abstract.append(text)

    def _papers(self, rel: int, text: str) -> None:
        for url in _ARXIV_LINK_RE.findall(text):
            try:
                paper = arxiv_id_from_url(url).base
            except MalformedArxivId:
                continue
            if self.paper is None:
                self.paper = paper
            elif paper != self.paper:
                self._warn(rel, f"second arXiv paper {paper} here (after {self.paper})")

    def _warn(self, rel: int, what: str) -> None:
        if not self.warned:  # one merge, one message
            self.warned = True
            self.report(rel, f"{what}; {_MISSING_HEADING}")


def _arxiv_ref(lines: _Lines) -> tuple[ArxivId | None, str | None]:
    """The entry's paper, or why it has none."""
    if lines.links_line is None:
        return None, "entry has no links line"
    link = lines.abs_url or lines.pdf_url
    if not link:
        return None, "links line has no abs or pdf link"
    try:
        return arxiv_id_from_url(link), None
    except MalformedArxivId as exc:
        return None, str(exc)


def _authors(line: str | None) -> list[str]:
    if not line:
        return []
    return [a for a in (squash_ws(x) for x in repair_mojibake(line).split(",")) if a]


def _parse_entry(
    post: Post, rank: int, title: str, block: str, line: int, problems: list[Problem]
) -> DigestEntry:
    def report(rel: int, message: str, severity: str = "warning") -> None:
        problems.append(Problem(line + rel, f"entry {rank}: {message}", severity))

    tweets, prose = _tweets(block, report)
    lines = _Lines(report)
    lines.read(prose)
    arxiv_ref, arxiv_problem = _arxiv_ref(lines)
    if arxiv_problem:
        report(0, arxiv_problem, "error")
    counts = lines.counts
    if counts is None:
        report(0, "no retweets/favorites line")
    return DigestEntry(
        post=post,
        rank=rank,
        line=line,
        title=squash_ws(repair_mojibake(title)),
        authors=_authors(lines.authors),
        retweets=int(counts["rt"]) if counts else None,
        favorites=int(counts["fav"]) if counts else None,
        counts_at=f"{counts['y']}-{counts['mo']}-{counts['d']}T{counts['t']}Z"
        if counts and counts["y"]
        else None,
        abs_url=lines.abs_url,
        pdf_url=lines.pdf_url,
        categories=lines.categories or [],
        abstract=squash_ws(repair_mojibake(" ".join(lines.abstract))),
        arxiv_id=arxiv_ref.base if arxiv_ref else None,
        arxiv_version=arxiv_ref.version if arxiv_ref else None,
        arxiv_problem=arxiv_problem,
        tweets=tweets,
    )


# --- the whole digest -------------------------------------------------------------------------


@dataclass(slots=True)
class _Heading:
    rank: int
    title: str
    line: int
    start: int  # where the entry's block begins (end of the heading line)
    end: int = -1  # where it ends (the next heading, or the end of the text)


def _headings(text: str, start: int, limit: int) -> tuple[list[_Heading], tuple[int, int] | None]:
    """The first ``limit`` entry headings after ``start``, and the line of the first heading
    beyond the limit with how many there are (None if there are none).

    Line numbers are counted as the scan goes, never from the start again (that was quadratic).
    """
    found: list[_Heading] = []
    line, pos = 1 + text.count("\n", 0, start), start
    matches = _HEADING_RE.finditer(text, start)
    for m in matches:
        line += text.count("\n", pos, m.start())
        pos = m.start()
        if found:
            found[-1].end = m.start()
        if len(found) == limit:
            return found, (line, 1 + sum(1 for _ in matches))
        found.append(_Heading(int(m["rank"]), m["title"].strip(_STRIP), line, m.end()))
    if found:
        found[-1].end = len(text)
    return found, None


def _without_nuls(text: str, problems: list[Problem]) -> str:
    """Drop NUL characters (one stray NUL must not cost the file), naming the lines they were on."""
    lines: list[int] = []
    line, pos = 1, 0
    while (at := text.find("\x00", pos)) >= 0:
        line += text.count("\n", pos, at)
        if not lines or lines[-1] != line:
            lines.append(line)
        pos = at + 1
    more = f" (and on {len(lines) - 1} more lines)" if len(lines) > 1 else ""
    problems.append(Problem(lines[0], f"NUL bytes removed{more}"))
    return text.replace("\x00", "")


def _count_repeated_ranks(entries: list[DigestEntry], problems: list[Problem]) -> None:
    """A rank used twice (`# 3.` and `# 3.` again) is a numbering slip: both entries are kept,
    the repeat is counted on it (so its entry_id differs) and said once."""
    first: dict[int, int] = {}  # rank -> line of its first entry
    for entry in entries:
        if entry.rank not in first:
            first[entry.rank] = entry.line
            continue
        entry.rank_repeat = sum(1 for e in entries if e.rank == entry.rank and e.line < entry.line)
        problems.append(
            Problem(
                entry.line,
                f"entry {entry.rank}: rank already used at line {first[entry.rank]}; both kept",
            )
        )


def _check_entries(entries: list[DigestEntry], problems: list[Problem]) -> None:
    _count_repeated_ranks(entries, problems)
    seen: dict[str, int] = {}
    for entry in entries:
        if entry.arxiv_id is None:
            continue
        if entry.arxiv_id in seen:
            problems.append(
                Problem(
                    entry.line, f"entry {entry.rank}: same paper as entry {seen[entry.arxiv_id]}"
                )
            )
        seen.setdefault(entry.arxiv_id, entry.rank)
    last = entries[-1]
    if last.retweets is None or last.arxiv_id is None:
        problems.append(Problem(last.line, f"entry {last.rank}: post looks cut off here"))


def parse_digest(
    text: str,
    source: str,
    encoding: str = "utf-8",
    *,
    max_entries: int = MAX_ENTRIES,
    front_matter_max: int = FRONT_MATTER_MAX,
) -> Digest:
    """Parse a decoded digest.

    Entries beyond ``max_entries`` are skipped with one error; front matter longer than
    ``front_matter_max`` characters is ignored. Raises :class:`DigestError` only when the text has
    neither an entry nor valid front matter (a post with front matter and no entries is a digest
    with nothing in it, as the real blog has).
    """
    problems: list[Problem] = []
    if "\x00" in text:
        text = _without_nuls(text, problems)
    text = text.removeprefix("\ufeff")
    front = _front_matter(text, front_matter_max, problems)
    post = _post(front, source, encoding, problems)
    limit = max(0, max_entries)
    headings, overflow = _headings(text, front.body_start, limit)
    if overflow:
        line, skipped = overflow
        message = (
            f"digest has more than {limit} entries; the {skipped} from here on are skipped "
            "(MAX_ENTRIES_PER_DIGEST)"
        )
        problems.append(Problem(line, message, "error"))
    elif not headings:
        if not front.valid:
            raise DigestError("no entries ('# N. Title' headings) found")
        problems.append(Problem(None, "no entries ('# N. Title' headings) found"))
    entries = [
        _parse_entry(post, h.rank, h.title, text[h.start : h.end], h.line, problems)
        for h in headings
    ]
    if entries:
        _check_entries(entries, problems)
    return Digest(post=post, entries=entries, problems=problems)


def parse_digest_bytes(
    data: bytes,
    source: str,
    *,
    max_entries: int = MAX_ENTRIES,
    front_matter_max: int = FRONT_MATTER_MAX,
) -> Digest:
    """Decode (BOM, UTF-8, legacy charset) then parse; :class:`DigestError` if unreadable."""
    try:
        text, encoding = decode_bytes(data)
    except DecodeError as exc:
        raise DigestError(str(exc)) from exc
    digest = parse_digest(
        text, source, encoding, max_entries=max_entries, front_matter_max=front_matter_max
    )
    if encoding not in ("utf-8", "utf-8-sig"):
        digest.problems.insert(0, Problem(None, f"not UTF-8; decoded as {encoding}"))
    return digest
