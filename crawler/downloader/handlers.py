"""Download handlers: Scrapy's, with two guarantees its defaults do not give.

- HTTP: Twisted's connection pool silently re-sends an idempotent request that fails on a
  reused keep-alive connection. arXiv would see two requests milliseconds apart, whatever host
  or port it shares with other services, so automatic re-sends are off for every request; the
  retry middleware retries instead, counted, gated and with backoff.
- Files: Scrapy reads a local file whole, whatever its size, and calls a FIFO or device "no such
  file". Here a source is refused with a clear reason before it is read: not a regular file, or
  larger than ``DOWNLOAD_MAXSIZE`` (the same cap as for URLs). A refusal is final, not retried.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from scrapy.core.downloader.handlers.file import FileDownloadHandler
from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.responsetypes import responsetypes
from scrapy.utils.asyncio import run_in_thread
from w3lib.url import file_uri_to_path

from crawler.sources import SourceRefused, check_local_source

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.http import Response


class NoResendHTTPDownloadHandler(HTTP11DownloadHandler):
    def __init__(self, crawler: Crawler, *, persistent: bool = True) -> None:
        super().__init__(crawler)
        self._pool.retryAutomatically = False
        self._pool.persistent = persistent
        # A request that asks for a fresh connection (``Connection: close``, arXiv's) goes
        # through a pool that keeps none: the server closes that connection after its answer,
        # and when the answer does not say so, Twisted would pool it; the next request on that
        # host (an oEmbed one, on a shared host) then failed on the dead connection.
        self._one_shot = None if not persistent else type(self)(crawler, persistent=False)

    async def download_request(self, request: Request) -> Response:
        if self._one_shot is not None and _asks_to_close(request):
            return await self._one_shot.download_request(request)
        return await super().download_request(request)

    async def close(self) -> None:
        if self._one_shot is not None:
            await self._one_shot.close()
        await super().close()


def _asks_to_close(request: Request) -> bool:
    return (request.headers.get(b"Connection") or b"").strip().lower() == b"close"


def read_capped(path: str, maxsize: int) -> bytes:
    """The file's bytes, checked first and read no further than the cap (it may grow)."""
    check_local_source(path, maxsize)
    with open(path, "rb") as f:
        # read(n) allocates n bytes before reading: ask for the file's size and one byte more
        # (to see it grow), not for the cap (32 MiB per digest, four reads at a time).
        size = os.fstat(f.fileno()).st_size
        data = f.read(min(size, maxsize) + 1 if maxsize else size + 1)
        if len(data) > size:  # it grew since: the rest, no further than the cap
            data += f.read(maxsize + 1 - len(data)) if maxsize else f.read()
    if maxsize and len(data) > maxsize:
        raise SourceRefused(f"file grew over DOWNLOAD_MAXSIZE ({maxsize:,} bytes)")
    return data


class CappedFileDownloadHandler(FileDownloadHandler):
    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.maxsize = crawler.settings.getint("DOWNLOAD_MAXSIZE")

    async def download_request(self, request: Request) -> Response:
        path = file_uri_to_path(request.url)
        maxsize = request.meta.get("download_maxsize", self.maxsize)
        try:
            body = await run_in_thread(read_capped, path, maxsize)
        except SourceRefused as exc:
            # Final: an OSError would be retried by Scrapy's retry middleware, which then
            # adds its own "Gave up retrying" error line to the one the spider writes.
            raise IgnoreRequest(str(exc)) from None
        respcls = responsetypes.from_args(filename=path, body=body)
        return respcls(url=request.url, body=body)
