"""Scrapy's remote-control console, imported only when it is on.

Scrapy 2.19 runs in every crawl, unless told otherwise, an HTTP server on a local port that
executes the Python sent to it (its token in a job file under the user's profile), and a telnet
console that does the same (its password in the log). A scheduled job has no one at either, and
both are ways into a process that holds the state database, so both are off here
(``REMOTE_CONTROL_ENABLED``, ``TELNETCONSOLE_ENABLED``). Off should cost nothing, but Scrapy's
extension imports aiohttp (~9 MB resident) even to say NotConfigured; this one imports it only
when the console is on.
"""

from __future__ import annotations

from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.utils.misc import build_from_crawler


class RemoteControl:
    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Any:
        if not crawler.settings.getbool("REMOTE_CONTROL_ENABLED"):
            raise NotConfigured
        from scrapy.extensions.remote_control import RemoteControl as ScrapyRemoteControl

        return build_from_crawler(ScrapyRemoteControl, crawler)
