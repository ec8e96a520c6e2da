"""``scrapy crawl`` run outside any Scrapy project: one line and exit 1, not Scrapy's exit 2.

Outside a project (no ``scrapy.cfg`` here or above, no ``SCRAPY_SETTINGS_MODULE``) Scrapy does
not know ``crawl`` at all and exits 2, which README reserves for an unreadable source. Scrapy
adds commands from the ``scrapy.commands`` entry point group wherever it runs, so this one is
registered there: outside a project it refuses the run (the spider is unknown there); inside
any project it is Scrapy's own ``crawl``, and ours (``COMMANDS_MODULE``) takes its place in
this project.
"""

from __future__ import annotations

import argparse
import os
import sys

from scrapy.commands.crawl import Command as ScrapyCrawl
from scrapy.utils.project import inside_project


class Command(ScrapyCrawl):
    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        if not inside_project():
            spider = repr(args[0]) if args else "the spider"
            print(
                f"error: {spider} is unknown here: {os.getcwd()} is not inside a Scrapy "
                "project (no scrapy.cfg in it or above it); run scrapy crawl from the "
                "project's root",
                file=sys.stderr,
            )
            raise SystemExit(1)
        super().process_options(args, opts)
