"""The spider's ``source`` argument -> a list of URLs to read (files become file:// URLs).

Reading local files through Scrapy too (its file download handler) keeps one code path for files
and URLs: the same errback reports a missing file and an unreachable URL.
"""

from __future__ import annotations

import atexit
import fnmatch
import glob
import os
import re
import shutil
import stat
import tempfile
from base64 import b64encode
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from urllib.parse import unquote_to_bytes, urlsplit, urlunsplit

from w3lib.url import safe_url_string

from crawler.logredact import redact_url_secrets

DIGEST_SUFFIXES = (".md", ".markdown", ".txt")


@dataclass(frozen=True, slots=True)
class Source:
    url: str  # what Scrapy fetches
    name: str  # what messages call it: the path as given, or the URL
    # What records call it (post.source): relative to the source argument, so records never
    # carry a path of the crawling machine (a file's name, the path below a folder or a
    # glob's leading folder, a URL without user:password).
    record_name: str = ""


@dataclass(slots=True)
class Expanded:
    sources: list[Source]
    problems: list[str]  # one line each: a spec that matched nothing, a dangling link, the cap


SCAN_MAX = 100_000  # files and folders one source may visit (SOURCE_SCAN_MAX)


_USERINFO_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


def without_userinfo(url: str) -> str:
    """``url`` without ``user:password@``: what logs, the run report and records may show."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not splittable (``http://[::1/``): its name still carries no password
        return _USERINFO_RE.sub(r"\1", url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def _userinfo_bytes(text: str) -> bytes:
    """A user name or password of a URL as the bytes to send: Latin-1 text as Latin-1 (what
    w3lib and browsers send), other text as UTF-8 (RFC 7617), a percent-escape that is not
    UTF-8 (``%FC``) as that very byte."""
    raw = unquote_to_bytes(text)
    try:
        return raw.decode("utf-8").encode("latin-1")
    except UnicodeError:
        return raw


def basic_auth(url: str) -> dict[str, bytes]:
    """``user:password@`` of a source URL as a basic-auth header, so the request's URL (which
    Scrapy logs) carries no password; Scrapy drops the header on a redirect to another host."""
    parts = urlsplit(url)
    if parts.username is None:
        return {}
    pair = _userinfo_bytes(parts.username) + b":" + _userinfo_bytes(parts.password or "")
    return {"Authorization": b"Basic " + b64encode(pair)}


# C0 and C1 control characters and DEL: a newline in a name would break its message in two.
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def not_text(text: str) -> str | None:
    """Why ``text`` is not text (None: it is): an undecodable byte of an argument or a file
    name (Python keeps it as a surrogate escape), or another lone surrogate."""
    for char in text:
        if 0xDC80 <= ord(char) <= 0xDCFF:
            return f"byte \\x{ord(char) - 0xDC00:02x} is not UTF-8 text"
        if 0xD800 <= ord(char) <= 0xDFFF:
            return f"\\u{ord(char):04x} is a lone surrogate, not text"
    return None


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be fetched as given, found before a request is built (Scrapy raised
    while building it, and the rest of the sources were never read); None when it can."""
    if reason := not_text(url):
        return f"not a valid URL: {reason} (percent-encode it)"
    if control := _CONTROL_RE.search(url):
        # URL parsers drop tabs and newlines without a word: another URL would be fetched.
        shown = printable(control.group())
        return f"not a valid URL: holds the control character {shown} (percent-encode it)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises for a port that is not a number in range
        safe_url_string(url)  # what scrapy.Request does with it
    except (ValueError, UnicodeError) as exc:
        return f"not a valid URL: {exc}"
    return None if parts.hostname else "not a valid URL: no host"


SAMPLES_NAME = "crawler/samples"  # how records name the bundled samples when not on disk


@cache
def sample_dir() -> Path:
    """The bundled samples as a real folder, copied out once when installed as a zip (egg)."""
    root = resources.files("crawler").joinpath("samples")
    if isinstance(root, Path) and root.is_dir():
        return root
    folder = Path(tempfile.mkdtemp(prefix="hot-papers-samples-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for item in root.iterdir():
        if item.name.endswith(DIGEST_SUFFIXES):
            (folder / item.name).write_bytes(item.read_bytes())
    return folder


class SourceRefused(OSError):
    """A local source that must not be read (its message names why)."""


def check_local_source(path: str, maxsize: int = 0) -> None:
    """Raise :class:`SourceRefused` unless ``path`` is a regular file within ``maxsize``."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise SourceRefused("no such file or folder") from None
    except OSError as exc:
        raise SourceRefused(exc.strerror or str(exc)) from None
    if stat.S_ISDIR(info.st_mode):
        raise SourceRefused("is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device or socket"
        raise SourceRefused(f"is {kind}, not a regular file")
    if maxsize and info.st_size > maxsize:
        raise SourceRefused(
            f"file is {info.st_size:,} bytes, over DOWNLOAD_MAXSIZE ({maxsize:,} bytes)"
        )


def printable_path(path: str) -> str:
    """A path as records and messages can carry it: a file name that is not UTF-8 keeps its
    undecodable bytes as ``\\xNN`` instead of breaking every line that mentions it."""
    try:
        return os.fsencode(path).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file name holds (not from the file system)
        return path.encode("utf-8", "backslashreplace").decode("utf-8")


def printable(text: str) -> str:
    """A path or URL as one line of a message can carry it: undecodable bytes as ``\\xNN``
    and control characters escaped (``\\n``), so the line is one line of valid text."""
    return _CONTROL_RE.sub(lambda m: repr(m.group())[1:-1], printable_path(text))


@lru_cache(maxsize=4)
def _working_folder(cwd: str) -> Path:
    """The working folder resolved once per run, not once per file of a large tree."""
    return Path(cwd).resolve()


def _display(path: Path) -> str:
    """Paths under the working directory stay relative, so messages do not depend on it."""
    try:
        shown = str(path.resolve().relative_to(_working_folder(os.getcwd())))
    except ValueError:
        shown = str(path.resolve())
    return printable(shown)


def _file(path: Path, below: Path | None = None) -> Source:
    """A local file; ``below``: the folder its record name is relative to (else its name)."""
    relative = path.name if below is None else os.path.relpath(os.path.abspath(path), below)
    return Source(path.resolve().as_uri(), _display(path), printable_path(relative))


def _leading_folder(pattern: str) -> Path:
    """A glob's leading folder without wildcards (``posts/`` of ``posts/2021-*.md``)."""
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate([*parts, "*"]) if glob.has_magic(part))
    return Path(*parts[:fixed]) if fixed else Path(".")


def _digests_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in DIGEST_SUFFIXES
    )


class ScanLimit(Exception):
    """A source visited more files and folders than ``SOURCE_SCAN_MAX``."""


@dataclass(slots=True)
class _Scan:
    """One source's walk: bounded, and never twice into the same folder at the same step of
    the pattern, so a symlink back into a folder it is already inside ends the walk there
    (``glob(recursive=True)`` followed ``a -> .`` for ever)."""

    limit: int
    files: list[Path] = field(default_factory=list)
    dangling: list[Path] = field(default_factory=list)
    seen: set[tuple[int, int, int]] = field(default_factory=set)
    listings: dict[Path, list[os.DirEntry[str]]] = field(default_factory=dict)
    visited: int = 0

    def entries(self, folder: Path) -> list[os.DirEntry[str]]:
        """A folder's entries, listed once per walk (``**/*.md`` looks at each folder twice)."""
        known = self.listings.get(folder)
        if known is None:
            known = self.listings[folder] = self._list(folder)
        return known

    def _list(self, folder: Path) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(folder) as listing:
                found = []
                for entry in listing:
                    self.visited += 1
                    if self.visited > self.limit:
                        raise ScanLimit
                    found.append(entry)
        except OSError:  # not a folder, gone, unreadable, a symlink loop: nothing in it
            return []
        return found

    def first_visit(self, folder: Path, step: int) -> bool:
        try:
            info = os.stat(folder)
        except OSError:
            return False
        key = (info.st_dev, info.st_ino, step)
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    def found(self, path: Path, entry: os.DirEntry[str] | None = None) -> None:
        if path.is_file():
            self.files.append(path)
        elif (entry.is_symlink() if entry else path.is_symlink()) and not path.exists():
            self.dangling.append(path)


def _visible(name: str, part: str) -> bool:
    """Like glob: a wildcard does not match a hidden name unless the pattern starts with '.'."""
    return part.startswith(".") or not name.startswith(".")


def _step(scan: _Scan, stack: list[tuple[Path, int]], parts: list[str], at: Path, i: int) -> None:
    """Match ``parts[i]`` in folder ``at``, pushing what matches."""
    part, last = parts[i], i == len(parts) - 1
    if part == "**":
        if not scan.first_visit(at, i):
            return
        stack.append((at, i + 1))  # zero folders
        for entry in scan.entries(at):
            if not _visible(entry.name, part):
                continue
            if entry.is_dir():
                stack.append((at / entry.name, i))
            elif last:
                scan.found(at / entry.name, entry)
    elif glob.has_magic(part):
        for entry in scan.entries(at):
            if _visible(entry.name, part) and fnmatch.fnmatchcase(entry.name, part):
                stack.append((at / entry.name, i + 1))
    else:
        stack.append((at / part, i + 1))


def walk_pattern(pattern: str, limit: int = SCAN_MAX) -> _Scan:
    """The files a glob pattern (``**`` allowed) matches, sorted; :class:`ScanLimit` beyond
    ``limit`` files and folders visited."""
    path = Path(pattern)
    parts = list(path.parts)
    fixed = next(i for i, part in enumerate([*parts, "*"]) if glob.has_magic(part))
    start = Path(*parts[:fixed]) if fixed else Path(".")
    rest = parts[fixed:]
    scan = _Scan(limit)
    stack: list[tuple[Path, int]] = [(start, 0)]
    while stack:
        at, i = stack.pop()
        if i == len(rest):
            scan.found(at)
        elif i == 0 or at.is_dir():
            _step(scan, stack, rest, at, i)
    scan.files.sort()
    scan.dangling.sort()
    return scan


def _folder(path: Path, item: str, limit: int, base: Path) -> tuple[list[Source], list[str]]:
    """Every digest file directly in a folder, and a line for each dangling digest link."""
    scan = _Scan(limit)
    for entry in scan.entries(path):
        if Path(entry.name).suffix.lower() in DIGEST_SUFFIXES:
            scan.found(path / entry.name, entry)
    found = sorted(scan.files)
    problems = [f"{_display_link(p)}: dangling symbolic link (its target is missing)" for p in
                sorted(scan.dangling)]  # fmt: skip
    if not found and not problems:
        problems.append(f"{printable(item)}: folder has no .md, .markdown or .txt files")
    return [_file(p, base) for p in found], problems


def _display_link(path: Path) -> str:
    """A symlink's own path (not its target's), as records would name it."""
    absolute = Path(os.path.abspath(path))
    try:
        return printable(str(absolute.relative_to(_working_folder(os.getcwd()))))
    except ValueError:
        return printable(str(absolute))


def _samples() -> Expanded:
    samples = sample_dir()
    if samples.is_relative_to(Path(str(resources.files("crawler")))):
        return Expanded([_file(p) for p in _digests_in(samples)], [])
    # Copied out of an egg: name them as in the source tree, so messages stay the same.
    return Expanded(
        [
            Source(p.resolve().as_uri(), f"{SAMPLES_NAME}/{p.name}", p.name)
            for p in _digests_in(samples)
        ],
        [],
    )


def _pattern(item: str, limit: int, base: Path) -> tuple[list[Source], list[str]]:
    pattern = os.path.expanduser(item)
    scan = walk_pattern(pattern, limit)
    problems = [
        f"{_display_link(p)}: dangling symbolic link (its target is missing)" for p in scan.dangling
    ]
    if not scan.files and not problems:
        problems.append(f"{printable(item)}: pattern matches no file")
    return [_file(p, base) for p in scan.files], problems


def _is_url(item: str) -> bool:
    return item.lower().startswith(("http://", "https://"))


def _root(item: str) -> str:
    """The folder a local piece of ``source`` stands for: itself, a glob's leading folder, or
    a file's folder."""
    path = Path(os.path.expanduser(item))
    if glob.has_magic(item):
        return os.path.abspath(_leading_folder(str(path)))
    # os.path.isdir, not Path.is_dir: a name too long to look up is no folder, not an error.
    return os.path.abspath(path if os.path.isdir(path) else path.parent)


def common_root(items: list[str]) -> Path:
    """What record names are relative to: the deepest folder holding every local piece, so two
    folders given together (``a/,b/``) name their files ``a/x.md`` and ``b/x.md``, never both
    ``x.md``; one folder names its files relative to itself."""
    roots = [_root(item) for item in items if not _is_url(item)]
    return Path(os.path.commonpath(roots)) if roots else Path.cwd()


def _url(item: str) -> tuple[list[Source], list[str]]:
    """A URL piece of ``source``, or the line saying why it cannot be fetched."""
    shown = without_userinfo(item)
    # Checked as given and as requested (without ``user:password@``, which can hide a bracket).
    if problem := url_problem(item) or url_problem(shown):
        return [], [f"{redact_url_secrets(printable(shown))}: {problem}"]
    return [Source(url=item, name=shown, record_name=shown)], []


def _not_found(item: str, reason: str) -> str:
    """The line for a local piece that cannot be read; ``ftp://…`` was called a missing file."""
    scheme = _SCHEME_RE.match(item)
    if scheme and reason == "no such file or folder":
        reason += f", and {scheme[1]}:// URLs are not read (only http and https)"
    return f"{printable(item)}: {reason}"


def _local(item: str, limit: int, base: Path) -> tuple[list[Source], list[str]]:
    """A file, folder or pattern piece of ``source``."""
    path = Path(os.path.expanduser(item))
    try:
        if path.is_dir():
            return _folder(path, item, limit, base)
        if glob.has_magic(item):
            return _pattern(item, limit, base)
    except ScanLimit:
        return [], [
            f"{printable(item)}: more than {limit:,} files and folders visited "
            "(SOURCE_SCAN_MAX); nothing read from it"
        ]
    try:
        check_local_source(str(path))
    except SourceRefused as exc:
        return [], [_not_found(item, str(exc))]
    return [_file(path, base)], []


def _expand_one(item: str, limit: int, base: Path) -> tuple[list[Source], list[str]]:
    """One comma-separated piece of ``source``: its sources, and lines for what it lost."""
    if _is_url(item):
        return _url(item)
    try:
        return _local(item, limit, base)
    except OSError as exc:  # a name too long to look up, a folder that cannot be listed
        return [], [f"{printable(item)}: {exc.strerror or exc}"]


def expand_sources(spec: str | None, limit: int = SCAN_MAX) -> Expanded:
    """Comma-separated files, folders, globs and http(s) URLs; None means the bundled samples.

    A given but empty spec (an unset shell variable, ``,,,``) names nothing and says so: it
    must not quietly crawl the samples into a production snapshot. Each folder or pattern
    visits at most ``limit`` files and folders (``SOURCE_SCAN_MAX``).
    """
    if spec is None:
        return _samples()
    items = [raw.strip() for raw in spec.split(",") if raw.strip()]
    if not items:
        return Expanded([], [f"source {spec!r} names no file, folder, pattern or URL"])
    sources: dict[str, Source] = {}
    problems: list[str] = []
    base = common_root(items)
    for item in items:
        found, lost = _expand_one(item, limit, base)
        for source in found:
            sources.setdefault(source.url, source)
        problems.extend(lost)
    return Expanded(list(sources.values()), problems)
