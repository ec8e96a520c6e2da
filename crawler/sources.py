"""The spider's ``source`` argument -> a list of URLs to read (files become file:// URLs).

Reading local files through Scrapy too (its file download handler) keeps one code path for files
and URLs: the same errback reports a missing file and an unreachable URL.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

DIGEST_SUFFIXES = (".md", ".markdown", ".txt")


@dataclass(frozen=True, slots=True)
class Source:
    url: str  # what Scrapy fetches
    name: str  # what records and messages call it: the path as given, or the URL


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


def _display(path: Path) -> str:
    """Paths under the working directory stay relative, so records do not depend on it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def _file(path: Path) -> Source:
    return Source(url=path.resolve().as_uri(), name=_display(path))


def _digests_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in DIGEST_SUFFIXES
    )


def expand_sources(spec: str | None) -> Expanded:
    """Comma-separated files, folders, globs and http(s) URLs; none means the bundled samples."""
    if not spec or not spec.strip():
        samples = sample_dir()
        if samples.is_relative_to(Path(str(resources.files("crawler")))):
            return Expanded([_file(p) for p in _digests_in(samples)], [])
        # Copied out of an egg: name them as in the source tree, so records stay byte-stable.
        return Expanded(
            [
                Source(p.resolve().as_uri(), f"{SAMPLES_NAME}/{p.name}")
                for p in _digests_in(samples)
            ],
            [],
        )
    sources: list[Source] = []
    problems: list[str] = []
    seen: set[str] = set()

    def add(source: Source) -> None:
        if source.url not in seen:
            seen.add(source.url)
            sources.append(source)

    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        if item.lower().startswith(("http://", "https://")):
            add(Source(url=item, name=item))
            continue
        path = Path(os.path.expanduser(item))
        if path.is_dir():
            found = _digests_in(path)
            if not found:
                problems.append(f"{item}: folder has no .md, .markdown or .txt files")
            for p in found:
                add(_file(p))
        elif glob.has_magic(item):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(item), recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                problems.append(f"{item}: pattern matches no file")
            for p in files:
                add(_file(p))
        elif path.is_file():
            add(_file(path))
        else:
            problems.append(f"{item}: no such file or folder")
    return Expanded(sources, problems)
