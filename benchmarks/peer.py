"""The peer: the obvious script a user would write for the same job, for comparison.

For every digest, for every entry: ask arXiv for that one paper with the ``arxiv`` package
(``arxiv.Client`` keeps the 3 s rule between its requests), then ask oEmbed for each tweet with
``requests.get``, one after the other, and append one JSON line. No batching, no de-duplication
across entries, no concurrency: exactly what the crawler is meant to beat.

    python -m benchmarks.peer --source DIR --out peer.jsonl \\
        [--arxiv-url URL] [--oembed-url URL] [--delay 3.0] [--max-posts N]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import arxiv
import requests

ENTRY = re.compile(r"^# (\d+)\.[ \t]+(.*)$", re.M)
ABS = re.compile(r"\[abs\]\(https?://arxiv\.org/abs/([^)\s]+)\)")
TWEET = re.compile(r'href="(https://twitter\.com/[^/"]+/status/\d+)\?ref_src=[^"]*"')


def make_client(arxiv_url: str | None, delay: float, retries: int = 3) -> arxiv.Client:
    client = arxiv.Client(page_size=100, delay_seconds=delay, num_retries=retries)
    if arxiv_url:
        client.query_url_format = arxiv_url + "?{}"  # point it at the stand-in
    return client


def entries(text: str) -> list[tuple[int, str, str | None, list[str]]]:
    heads = list(ENTRY.finditer(text))
    out = []
    for i, m in enumerate(heads):
        body = text[m.end() : heads[i + 1].start() if i + 1 < len(heads) else len(text)]
        link = ABS.search(body)
        out.append((int(m[1]), m[2].strip(), link[1] if link else None, TWEET.findall(body)))
    return out


def fetch_paper(client: arxiv.Client, arxiv_id: str) -> dict:
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


def fetch_tweet(oembed_url: str, url: str) -> dict:
    try:
        resp = requests.get(
            oembed_url, params={"url": url, "omit_script": "1", "dnt": "true"}, timeout=60
        )
    except requests.RequestException as exc:
        return {"status": "error", "error": str(exc)}
    if resp.status_code != 200:
        return {"status": "error", "error": f"HTTP {resp.status_code}"}
    data = resp.json()
    return {"status": "ok", "html": data.get("html"), "author_name": data.get("author_name")}


def run(
    sources: list[Path],
    out: Path,
    arxiv_url: str | None = None,
    oembed_url: str = "https://publish.twitter.com/oembed",
    delay: float = 3.0,
) -> dict[str, int]:
    client = make_client(arxiv_url, delay)
    counts = {"posts": 0, "entries": 0, "arxiv_requests": 0, "oembed_requests": 0}
    with out.open("w", encoding="utf-8") as fh:
        for path in sources:
            text = path.read_text(encoding="utf-8", errors="replace")
            counts["posts"] += 1
            for rank, title, arxiv_id, tweets in entries(text):
                record = {"source": path.name, "rank": rank, "title": title, "arxiv_id": arxiv_id}
                if arxiv_id:
                    record["arxiv"] = fetch_paper(client, arxiv_id)
                    counts["arxiv_requests"] += 1
                record["tweets"] = [{"url": u, "embed": fetch_tweet(oembed_url, u)} for u in tweets]
                counts["oembed_requests"] += len(tweets)
                counts["entries"] += 1
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return counts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, required=True, help="folder of digests")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--arxiv-url", default=None)
    ap.add_argument("--oembed-url", default="https://publish.twitter.com/oembed")
    ap.add_argument("--delay", type=float, default=3.0)
    ap.add_argument("--max-posts", type=int, default=None)
    args = ap.parse_args(argv)
    sources = sorted(args.source.glob("*.txt"))[: args.max_posts]
    start = time.monotonic()
    counts = run(sources, args.out, args.arxiv_url, args.oembed_url, args.delay)
    counts["wall_s"] = round(time.monotonic() - start, 3)  # type: ignore[assignment]
    json.dump(counts, sys.stdout)
    print()


if __name__ == "__main__":
    main()
