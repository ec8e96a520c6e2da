"""A "Hot Papers" digest (Markdown + YAML front matter) -> post and entries. No crawl needed.

Damage is reported, not fatal: every problem becomes a :class:`Problem` with a line number and
parsing goes on with what can be read. Only input with nothing to read raises :class:`DigestError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import PurePosixPath
from urllib.parse import urlparse

import yaml
from frontmatter.default_handlers import YAMLHandler

from crawler.items import DigestEntry, Post, Tweet
from crawler.parsing.arxiv_ids import MalformedArxivId, arxiv_id_from_url
from crawler.parsing.text import DecodeError, decode_bytes, repair_mojibake, squash_ws
from crawler.parsing.tweets import TweetParseError, parse_blockquote


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


_YAML = YAMLHandler()
_HEADER_RE = re.compile(r"^#[ \t]+(?P<rank>\d{1,9})\.[ \t]*(?P<title>.*?)[ \t]*$", re.M)
_COUNTS_RE = re.compile(
    r"^-\s*retweets:\s*(?P<rt>\d{1,12})\s*,\s*favorites:\s*(?P<fav>\d{1,12})"
    r"(?:\s*\((?P<mo>\d{2})/(?P<d>\d{2})/(?P<y>\d{4})\s+(?P<t>\d{2}:\d{2}:\d{2})\))?"
)
_LINKS_RE = re.compile(r"^-\s*links:", re.I)
_MD_LINK_RE = re.compile(r"\[(?P<label>[^\]]*)\]\((?P<url>[^)\s]*)\)")
_CATEGORY_LINK_RE = re.compile(r"\[(?P<cat>[^\]]+)\]\(https?://(?:www\.)?arxiv\.org/list/[^)]*\)")
# Opening tags are bounded ({0,500}) so hostile input ("<blockquote " repeated) stays linear.
_BLOCKQUOTE_RE = re.compile(
    r"<blockquote\b(?P<attrs>[^>]{0,500})>.*?(?:</blockquote>|\Z)", re.S | re.I
)
_SCRIPT_RE = re.compile(r"<script\b[^>]{0,500}>.*?(?:</script>|\Z)", re.S | re.I)
_DATE_RE = re.compile(
    r"^(?P<d>\d{4}-\d{2}-\d{2})(?:[T ](?P<t>\d{2}:\d{2}(?::\d{2})?)(?:\.\d*)?"
    r"\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?)?$"
)


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


def _line_at(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _slug_from_source(source: str) -> str:
    path = urlparse(source).path if "://" in source else source
    return PurePosixPath(path.replace("\\", "/")).stem or "digest"


def _front_matter(text: str, problems: list[Problem]) -> tuple[dict, int]:
    """Metadata and the offset where the body starts."""
    if not _YAML.detect(text):
        problems.append(Problem(1, "no YAML front matter; post fields taken from the file name"))
        return {}, 0
    fences = list(_YAML.FM_BOUNDARY.finditer(text))  # type: ignore[union-attr]
    if len(fences) < 2:
        problems.append(Problem(1, "front matter is never closed by '---'"))
        return {}, fences[0].end()
    raw = text[fences[0].end() : fences[1].start()]
    try:
        meta = _YAML.load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problems.append(Problem(line, f"invalid YAML front matter ({reason})"))
        meta = {}
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. date: 2021-13-45
        problems.append(Problem(2, f"invalid YAML front matter ({exc})"))
        meta = {}
    if not isinstance(meta, dict):
        problems.append(Problem(2, "front matter is not a mapping; ignored"))
        meta = {}
    return meta, fences[1].end()


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _post(meta: dict, source: str, encoding: str, problems: list[Problem]) -> Post:
    raw_tags = meta.get("tags") or []
    tags = [str(t) for t in raw_tags] if isinstance(raw_tags, list) else [str(raw_tags)]
    post_date = iso_utc(meta.get("date"))
    if meta and post_date is None:
        problems.append(Problem(1, f"front matter date {meta.get('date')!r} is not a date"))
    title = _str_or_none(meta.get("title"))
    return Post(
        source=source,
        slug=_str_or_none(meta.get("slug")) or _slug_from_source(source),
        title=repair_mojibake(title) if title else None,
        date=post_date,
        tags=tags,
        category=_str_or_none(meta.get("category")),
        encoding=encoding,
    )


def _parse_entry(
    post: Post, rank: int, title: str, block: str, line: int, problems: list[Problem]
) -> DigestEntry:
    def problem(offset_line: int, message: str, severity: str = "warning") -> None:
        problems.append(Problem(line + offset_line, f"entry {rank}: {message}", severity))

    tweets: list[Tweet] = []
    for m in _BLOCKQUOTE_RE.finditer(block):
        if "twitter-tweet" not in m["attrs"]:
            continue
        rel = block.count("\n", 0, m.start())
        markup = m.group(0)
        if not markup.lower().rstrip().endswith("</blockquote>"):
            problem(rel, "tweet blockquote is cut off")
        try:
            tweets.append(parse_blockquote(markup))
        except TweetParseError as exc:
            problem(rel, str(exc), "error")
    prose = _SCRIPT_RE.sub("", _BLOCKQUOTE_RE.sub("", block))

    authors_line: str | None = None
    retweets = favorites = None
    counts_at = abs_url = pdf_url = None
    categories: list[str] = []
    links_seen = False
    abstract: list[str] = []
    for rel, raw in enumerate(prose.split("\n")):
        text = raw.strip()
        if not text:
            continue
        if m := _COUNTS_RE.match(text):
            retweets, favorites = int(m["rt"]), int(m["fav"])
            if m["y"]:
                counts_at = f"{m['y']}-{m['mo']}-{m['d']}T{m['t']}Z"
        elif _LINKS_RE.match(text):
            links_seen = True
            for link in _MD_LINK_RE.finditer(text):
                label = link["label"].strip().lower()
                if label == "abs":
                    abs_url = link["url"]
                elif label == "pdf":
                    pdf_url = link["url"]
        elif text.startswith("-") and _CATEGORY_LINK_RE.search(text):
            categories = [c["cat"].strip() for c in _CATEGORY_LINK_RE.finditer(text)]
        elif authors_line is None and retweets is None and not links_seen:
            authors_line = text
        elif text.startswith("- ") and not abstract:
            problem(rel, f"unrecognised line {text[:60]!r}")
        else:
            abstract.append(text)

    arxiv_ref = None
    arxiv_problem = None
    link = abs_url or pdf_url
    if not links_seen:
        arxiv_problem = "entry has no links line"
        problem(0, arxiv_problem, "error")
    elif not link:
        arxiv_problem = "links line has no abs or pdf link"
        problem(0, arxiv_problem, "error")
    else:
        try:
            arxiv_ref = arxiv_id_from_url(link)
        except MalformedArxivId as exc:
            arxiv_problem = str(exc)
            problem(0, arxiv_problem, "error")
    if retweets is None:
        problem(0, "no retweets/favorites line")

    authors = (
        [a for a in (squash_ws(x) for x in repair_mojibake(authors_line).split(",")) if a]
        if authors_line
        else []
    )
    return DigestEntry(
        post=post,
        rank=rank,
        line=line,
        title=squash_ws(repair_mojibake(title)),
        authors=authors,
        retweets=retweets,
        favorites=favorites,
        counts_at=counts_at,
        abs_url=abs_url,
        pdf_url=pdf_url,
        categories=categories,
        abstract=squash_ws(repair_mojibake(" ".join(abstract))),
        arxiv_id=arxiv_ref.base if arxiv_ref else None,
        arxiv_version=arxiv_ref.version if arxiv_ref else None,
        arxiv_problem=arxiv_problem,
        tweets=tweets,
    )


def parse_digest(text: str, source: str, encoding: str = "utf-8") -> Digest:
    """Parse a decoded digest. Raises :class:`DigestError` only when no entry can be found."""
    problems: list[Problem] = []
    meta, body_start = _front_matter(text, problems)
    post = _post(meta, source, encoding, problems)
    headers = list(_HEADER_RE.finditer(text, body_start))
    if not headers:
        raise DigestError("no entries ('# N. Title' headings) found")
    entries = []
    seen: dict[str, int] = {}
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        line = _line_at(text, header.start())
        entry = _parse_entry(
            post, int(header["rank"]), header["title"], text[header.end() : end], line, problems
        )
        if entry.arxiv_id is not None:
            if entry.arxiv_id in seen:
                problems.append(
                    Problem(line, f"entry {entry.rank}: same paper as entry {seen[entry.arxiv_id]}")
                )
            seen.setdefault(entry.arxiv_id, entry.rank)
        entries.append(entry)
    last = entries[-1]
    if last.retweets is None or last.arxiv_id is None:
        problems.append(Problem(last.line, f"entry {last.rank}: post looks cut off here"))
    return Digest(post=post, entries=entries, problems=problems)


def parse_digest_bytes(data: bytes, source: str) -> Digest:
    """Decode (BOM, UTF-8, legacy charset) then parse; :class:`DigestError` if unreadable."""
    try:
        text, encoding = decode_bytes(data)
    except DecodeError as exc:
        raise DigestError(str(exc)) from exc
    digest = parse_digest(text, source, encoding)
    if encoding not in ("utf-8", "utf-8-sig"):
        digest.problems.insert(0, Problem(None, f"not UTF-8; decoded as {encoding}"))
    return digest
