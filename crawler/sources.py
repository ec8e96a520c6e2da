"""The spider's ``source`` argument -> a list of URLs to read (files become file:// URLs).

Reading local files through Scrapy too (its file download handler) keeps one code path for files
and URLs: the same errback reports a missing file and an unreachable URL.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DIGEST_SUFFIXES = (".md", ".markdown", ".txt")


@dataclass(frozen=True, slots=True)
class Source:
    url: str  # what Scrapy fetches
    name: str  # what messages call it: the path as given, or the URL
    # What records call it (post.source): relative to the source argument, so records never
    # carry a path of the crawling machine; see relative_name().
    record_name: str = ""


@dataclass(slots=True)
class Expanded:
    sources: list[Source]
    problems: list[str]  # one line each: a spec that matched nothing


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
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _display(path: Path) -> str:
    """Paths under the working directory stay relative, so records do not depend on it."""
    try:
        shown = str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        shown = str(path.resolve())
    return printable_path(shown)


def _file(path: Path, below: Path | None = None) -> Source:
    """A local file; ``below``: the folder its record name is relative to (else its name)."""
    relative = path.name if below is None else os.path.relpath(path, below)
    return Source(path.resolve().as_uri(), _display(path), printable_path(relative))


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _fixed_folder(pattern: str) -> Path:
    """A glob's leading folder without magic (``posts/`` of ``posts/2021-*.md``)."""
    fixed = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _digests_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in DIGEST_SUFFIXES
    )


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


def _expand_one(item: str) -> tuple[list[Source], str | None]:
    """One comma-separated piece of ``source``: its sources, or why it names none."""
    if item.lower().startswith(("http://", "https://")):
        return [Source(url=item, name=item, record_name=_without_password(item))], None
    path = Path(os.path.expanduser(item))
    if path.is_dir():
        found = _digests_in(path)
        return [_file(p, path) for p in found], None if found else (
            f"{item}: folder has no .md, .markdown or .txt files"
        )
    if glob.has_magic(item):
        pattern = os.path.expanduser(item)
        matches = sorted(Path(m) for m in glob.glob(pattern, recursive=True))
        files = [m for m in matches if m.is_file()]
        below = _fixed_folder(pattern)
        return [
            _file(p, below) for p in files
        ], None if files else f"{item}: pattern matches no file"
    try:
        check_local_source(str(path))
    except SourceRefused as exc:
        return [], f"{printable_path(item)}: {exc}"
    return [_file(path)], None


def expand_sources(spec: str | None) -> Expanded:
    """Comma-separated files, folders, globs and http(s) URLs; None means the bundled samples.

    A given but empty spec (an unset shell variable, ``,,,``) names nothing and says so: it
    must not quietly crawl the samples into a production snapshot.
    """
    if spec is None:
        return _samples()
    items = [raw.strip() for raw in spec.split(",") if raw.strip()]
    if not items:
        return Expanded([], [f"source {spec!r} names no file, folder, pattern or URL"])
    sources: dict[str, Source] = {}
    problems: list[str] = []
    for item in items:
        found, problem = _expand_one(item)
        for source in found:
            sources.setdefault(source.url, source)
        if problem:
            problems.append(problem)
    return Expanded(list(sources.values()), problems)
