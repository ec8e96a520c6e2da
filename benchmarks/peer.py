"""The peer: the obvious script a user would write for the same job, for comparison.

For every digest, for every entry: ask arXiv for that one paper with the ``arxiv`` package
(``arxiv.Client`` keeps its delay between request starts), then for each tweet an oEmbed GET and
a syndication GET (tweet details, with the token the crawler computes), one after the other.
Once every entry is read, Semantic Scholar's batch endpoint for the papers, 500 IDs per POST and
one POST per ``--s2-delay`` seconds (a user would find the batch endpoint: one request per paper
at 1 request/s would be absurd). Then one JSON line per entry. No de-duplication across entries
(but each S2 batch holds a paper once), no concurrency: exactly what the crawler is meant to
beat.

    python -m benchmarks.peer --source DIR --out peer.jsonl [--arxiv-url URL] [--oembed-url URL]
        [--syndication-url URL] [--s2-url URL] [--delay 3.0] [--s2-delay 1.0] [--max-posts N]

It prints its counts of requests per service and its own wall time (without start-up) as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import arxiv
import requests

from crawler.services.semantic_scholar import FIELDS as S2_FIELDS
from crawler.services.syndication import token

ENTRY = re.compile(r"^# (\d+)\.[ \t]+(.*)$", re.M)
ABS = re.compile(r"\[abs\]\(https?://arxiv\.org/abs/([^)\s]+)\)")
TWEET = re.compile(r'href="(https://twitter\.com/[^/"]+/status/(\d+))\?ref_src=[^"]*"')
S2_BATCH = 500  # the batch endpoint's maximum
OEMBED_URL = "https://publish.twitter.com/oembed"
SYNDICATION_URL = "https://cdn.syndication.twimg.com/tweet-result"
S2_URL = "https://api.semanticscholar.org/graph/v1/paper/batch"
VERSION = re.compile(r"v[0-9]+$")


def make_client(arxiv_url: str | None, delay: float, retries: int = 3) -> arxiv.Client:
    client = arxiv.Client(page_size=100, delay_seconds=delay, num_retries=retries)
    if arxiv_url:
        client.query_url_format = arxiv_url + "?{}"  # point it at the stand-in
    return client


def entries(text: str) -> list[tuple[int, str, str | None, list[tuple[str, str]]]]:
    """(rank, title, arXiv ID, [(tweet URL, tweet ID)]) per entry of a digest."""
    heads = list(ENTRY.finditer(text))
    out = []
    for i, m in enumerate(heads):
        body = text[m.end() : heads[i + 1].start() if i + 1 < len(heads) else len(text)]
        link = ABS.search(body)
        out.append((int(m[1]), m[2].strip(), link[1] if link else None, TWEET.findall(body)))
    return out


def fetch_paper(client: arxiv.Client, arxiv_id: str) -> dict[str, Any]:
    try:
        results = list(client.results(arxiv.Search(id_list=[arxiv_id])))
    except Exception as exc:
        return {"status": "error", "error": str(exc)}
    if not results:
        return {"status": "not_found"}
    r = results[0]
    return {
        "status": "ok",
        "id": r.get_short_id(),
        "title": r.title,
        "authors": [a.name for a in r.authors],
        "summary": r.summary,
        "published": r.published.isoformat(),
        "categories": r.categories,
    }


def get_json(url: str, params: dict[str, str]) -> dict[str, Any]:
    """One GET; the JSON answer, or why there is none."""
    try:
        resp = requests.get(url, params=params, timeout=60)
    except requests.RequestException as exc:
        return {"status": "error", "error": str(exc)}
    if resp.status_code != 200:
        return {"status": "error", "error": f"HTTP {resp.status_code}"}
    try:
        return {"status": "ok", "data": resp.json()}
    except ValueError as exc:
        return {"status": "error", "error": str(exc)}


def fetch_tweet(oembed_url: str, syndication_url: str, url: str, tweet_id: str) -> dict[str, Any]:
    """The embed, then the details of one tweet."""
    embed = get_json(oembed_url, {"url": url, "omit_script": "1", "dnt": "true"})
    details = get_json(syndication_url, {"id": tweet_id, "lang": "en", "token": token(tweet_id)})
    return {"url": url, "embed": embed, "details": details}


def fetch_citations(s2_url: str, ids: list[str], delay: float) -> dict[str, Any]:
    """Semantic Scholar for every paper, 500 per POST, ``delay`` seconds between POSTs."""
    found: dict[str, Any] = {}
    for n, start in enumerate(range(0, len(ids), S2_BATCH)):
        if n:
            time.sleep(delay)
        batch = ids[start : start + S2_BATCH]
        try:
            resp = requests.post(
                s2_url,
                params={"fields": S2_FIELDS},
                json={"ids": [f"ARXIV:{i}" for i in batch]},
                timeout=60,
            )
            papers = resp.json() if resp.status_code == 200 else [None] * len(batch)
        except (requests.RequestException, ValueError):
            papers = [None] * len(batch)
        found.update(zip(batch, papers, strict=False))
    return found


def read_entries(
    sources: list[Path], client: arxiv.Client, urls: dict[str, str], counts: dict[str, int]
) -> list[dict[str, Any]]:
    """Every entry with its paper and tweets, asked for one by one, in digest order."""
    records = []
    for path in sources:
        text = path.read_text(encoding="utf-8", errors="replace")
        counts["posts"] += 1
        for rank, title, arxiv_id, tweets in entries(text):
            record: dict[str, Any] = {"source": path.name, "rank": rank, "title": title}
            record["arxiv_id"] = arxiv_id
            if arxiv_id:
                record["arxiv"] = fetch_paper(client, arxiv_id)
                counts["arxiv"] += 1
            record["tweets"] = [
                fetch_tweet(urls["oembed"], urls["syndication"], u, t) for u, t in tweets
            ]
            counts["oembed"] += len(tweets)
            counts["syndication"] += len(tweets)
            counts["entries"] += 1
            records.append(record)
    return records


def run(
    sources: list[Path], out: Path, urls: dict[str, str], delay: float, s2_delay: float
) -> dict[str, int]:
    client = make_client(urls["arxiv"] or None, delay)
    counts = dict.fromkeys(("posts", "entries", "arxiv", "oembed", "syndication"), 0)
    records = read_entries(sources, client, urls, counts)
    ids = list(dict.fromkeys(VERSION.sub("", r["arxiv_id"]) for r in records if r["arxiv_id"]))
    citations = fetch_citations(urls["semantic_scholar"], ids, s2_delay)
    counts["semantic_scholar"] = -(-len(ids) // S2_BATCH)
    with out.open("w", encoding="utf-8") as fh:
        for record in records:
            if record["arxiv_id"]:
                record["citations"] = citations.get(VERSION.sub("", record["arxiv_id"]))
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return counts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--source", type=Path, required=True, help="folder of digests")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--arxiv-url", default="", help="default: the arxiv package's")
    ap.add_argument("--oembed-url", default=OEMBED_URL)
    ap.add_argument("--syndication-url", default=SYNDICATION_URL)
    ap.add_argument("--s2-url", default=S2_URL)
    ap.add_argument("--delay", type=float, default=3.0)
    ap.add_argument("--s2-delay", type=float, default=1.0)
    ap.add_argument("--max-posts", type=int, default=None)
    args = ap.parse_args(argv)
    sources = sorted(args.source.glob("*.txt"))[: args.max_posts]
    urls = {
        "arxiv": args.arxiv_url,
        "oembed": args.oembed_url,
        "syndication": args.syndication_url,
        "semantic_scholar": args.s2_url,
    }
    start = time.monotonic()
    counts: dict[str, Any] = run(sources, args.out, urls, args.delay, args.s2_delay)
    counts["wall_s"] = round(time.monotonic() - start, 3)
    json.dump(counts, sys.stdout)
    print()


if __name__ == "__main__":
    main()
