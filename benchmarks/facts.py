"""What a corpus asks of the upstreams, and how fast the crawler's parser reads it.

The floor is computed from the corpus (distinct IDs and tweets, as the crawler's own parser sees
them), not from the crawl, so a crawler that skipped work could not lower it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from benchmarks.model import BATCH_SIZE, TWEET_CONCURRENCY_MAX, Config


# --- corpus facts and the bound -----------------------------------------------------------------
def corpus_facts(folder: Path) -> dict[str, float]:
    """Parse the corpus with the crawler's parser: counts for the bound, and parse speed."""
    from crawler.parsing.digest import parse_digest_bytes

    files = sorted(folder.glob("*.txt"))
    ids: set[str] = set()
    papers: set[str] = set()
    tweets: set[str] = set()
    entries = embeds = 0
    parse_s = 0.0
    for path in files:
        data = path.read_bytes()
        t = time.perf_counter()
        digest = parse_digest_bytes(data, path.name)
        parse_s += time.perf_counter() - t
        for e in digest.entries:
            entries += 1
            if e.arxiv_query:
                ids.add(e.arxiv_query)
            if e.arxiv_id:
                papers.add(e.arxiv_id)
            embeds += len(e.tweets)
            tweets.update(t.id for t in e.tweets)
    return {
        "posts": len(files),
        "entries": entries,
        "tweet_embeds": embeds,
        "distinct_ids": len(ids),
        "distinct_papers": len(papers),
        "distinct_tweets": len(tweets),
        "bytes": sum(p.stat().st_size for p in files),
        "parse_s": parse_s,
        "parse_entries_per_s": entries / parse_s if parse_s else 0.0,
    }


def parse_speed(folder: Path, posts: int = 200, repeats: int = 5) -> dict[str, float]:
    """Entries/s of ``parse_digest_bytes`` on one core, best of ``repeats`` passes over bytes.

    Best-of, because the machine may be shared; the first pass also warms imports and caches.
    """
    from crawler.parsing.digest import parse_digest_bytes

    blobs = [(p.name, p.read_bytes()) for p in sorted(folder.glob("*.txt"))[:posts]]
    best, entries = math.inf, 0
    for _ in range(repeats):
        t = time.perf_counter()
        entries = sum(len(parse_digest_bytes(data, name).entries) for name, data in blobs)
        best = min(best, time.perf_counter() - t)
    return {
        "posts": len(blobs),
        "entries": entries,
        "mb": sum(len(d) for _, d in blobs) / 2**20,
        "entries_per_s": entries / best,
        "mb_per_s": sum(len(d) for _, d in blobs) / 2**20 / best,
    }


def bound(ids: int, tweets: int, cfg: Config) -> tuple[float, float, float]:
    """The floor (arXiv's rule) and each tweet service's own bound at the cap, in seconds.

    arXiv: B = ceil(ids / batch) requests one at a time, starts ``delay`` apart and none before
    the previous answer, so (B-1)·max(delay, latency) + latency; nothing the crawler does can
    beat it. A tweet service: one request per distinct tweet, at most 16 at once, so
    tweets × latency / 16; shown for context, as it moves with the concurrency a service allows.
    """
    batches = math.ceil(ids / BATCH_SIZE)
    arxiv = (
        (batches - 1) * max(cfg.arxiv_delay, cfg.arxiv_latency) + cfg.arxiv_latency
        if batches
        else 0.0
    )
    oembed = tweets * cfg.oembed_latency / TWEET_CONCURRENCY_MAX
    syndication = tweets * cfg.syndication_latency / TWEET_CONCURRENCY_MAX
    return arxiv, oembed, syndication
