"""A file feed storage that never leaves a half-written file behind.

Records go to a temporary file beside the target; only when the crawl finishes is it flushed to
disk and renamed over the target, which is atomic on POSIX. A crash leaves the previous file as
it was (plus, at worst, a stray ``.NAME.*.tmp``). Appending (``-o``) starts from a copy of the
old file, so it is atomic too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

from scrapy.extensions.feedexport import FileFeedStorage


class AtomicFileFeedStorage(FileFeedStorage):
    def open(self, spider: Any) -> IO[Any]:
        target = Path(self.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in store()
            mode="w+b", prefix=f".{target.name}.", suffix=".tmp", dir=target.parent, delete=False
        )
        if self.write_mode == "ab" and target.exists():
            with target.open("rb") as old:
                shutil.copyfileobj(old, tmp)
        return tmp

    def store(self, file: IO[Any]) -> None:
        file.flush()
        os.fsync(file.fileno())
        file.close()
        target = Path(self.path)
        os.chmod(file.name, 0o644)
        os.replace(file.name, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
