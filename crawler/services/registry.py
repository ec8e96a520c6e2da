"""The services a crawl enriches with, in record order. Adding one is one line here."""

from __future__ import annotations

from typing import Any

from crawler.services.arxiv import Arxiv
from crawler.services.base import Service
from crawler.services.hf_papers import HfPapers
from crawler.services.oembed import OEmbed
from crawler.services.openalex import OpenAlex
from crawler.services.semantic_scholar import SemanticScholar
from crawler.services.syndication import Syndication

SERVICES: tuple[type[Service[Any]], ...] = (
    Arxiv,
    SemanticScholar,
    HfPapers,
    OpenAlex,
    OEmbed,
    Syndication,
)
