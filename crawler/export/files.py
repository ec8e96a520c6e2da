"""Writing a file so that readers see the old one or the new one, never half of either."""

from __future__ import annotations

import os
import tempfile
from contextlib import suppress
from pathlib import Path


def file_uri_path(uri: str) -> str | None:
    """The path a ``file:`` feed URI names, in any case (``FILE:///o/x.jsonl`` is ``/o/x.jsonl``
    to urlparse and so to Scrapy's choice of storage), or None for any other URI. Scrapy's own
    storage only knew ``file:`` in lower case and wrote the upper-case one to ``./FILE:/o``."""
    if uri[:5].lower() != "file:":
        return None
    # Imported here: w3lib.url brings urllib.request, http.client and ssl (~6 MB) into every
    # process that imports this module, the dataset steps and their supervisor among them.
    from w3lib.url import file_uri_to_path

    return file_uri_to_path(uri)


def posts_file(snapshot: Path) -> Path:
    """``NAME.posts.jsonl``: the digests a run read, beside the snapshot ``NAME.jsonl``."""
    return snapshot.with_name(f"{snapshot.stem}.posts.jsonl")


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (the directory entry, not just the file's data)."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write a temporary file beside ``path``, flush it to disk and rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
