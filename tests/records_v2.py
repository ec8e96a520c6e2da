"""Schema-3 records for the export tests, and a synthetic corpus of any size.

They are built from the item classes with :func:`crawler.record.build_record` and checked with ``schema_errors`` each time:
they cannot drift from the contract. ``crawler/parsing/links.py`` is still a placeholder, so
``linked_arxiv_ids``/``links_paper``/``code_urls`` are set here explicitly when a test needs them.

Run ``python -m tests.records_v2 OUT.jsonl --records 7000`` to write a synthetic snapshot (the
size of the 294-post corpus) for timing ``write_dataset``.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crawler.export.jsonlines import dumps, sort_key
from crawler.items import ArxivMeta, DigestEntry, Embed, Impact, Post, Tweet, TweetDetails
from crawler.record import build_record, schema_errors

TWITTER_EPOCH_MS = 1288834974657
FETCHED = "2021-06-19T08:00:00.000Z"  # when the services were asked, in these records
LOREM = (
    "We study how large models adapt to new tasks with few trainable parameters, and show that "
    "low-rank updates match full fine-tuning on several benchmarks while cutting memory. "
)


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tweet_id_at(when: datetime, seq: int = 0) -> str:
    """A snowflake ID whose embedded time is ``when`` (so ``created_at`` is meaningful)."""
    ms = int(when.timestamp() * 1000) - TWITTER_EPOCH_MS
    return str((ms << 22) + seq)


def post(slug: str, date: str | None, *, title: str | None = None, source: str = "") -> Post:
    return Post(
        source=source or f"digests/{slug}.md",
        slug=slug,
        title=title if title is not None else slug.replace("-", " ").title(),
        published_at=date,
        tags=["arXiv", "Twitter"],
        category="arXiv",
    )


def arxiv_ok(
    arxiv_id: str,
    title: str,
    *,
    version: int = 1,
    category: str = "cs.LG",
    summary: str = LOREM,
    comment: str | None = None,
) -> ArxivMeta:
    vid = f"{arxiv_id}v{version}"
    return ArxivMeta(
        status="ok", fetched_at=FETCHED, versioned_id=vid, version=version, title=title,
        abstract=summary,
        authors=[{"name": "Ada Lovelace", "affiliations": ["Analytical Engines"]},
                 {"name": "Alan Turing", "affiliations": []}],
        published_at="2021-06-17T17:37:18Z", updated_at="2021-06-18T10:00:00Z",
        primary_category=category, categories=[category, "cs.AI"], comment=comment,
        abs_url=f"https://arxiv.org/abs/{vid}", pdf_url=f"https://arxiv.org/pdf/{vid}",
    )  # fmt: skip


def arxiv_failed(status: str = "error", error: str = "arXiv answered HTTP 503") -> ArxivMeta:
    return ArxivMeta(status=status, error=error)  # type: ignore[arg-type]


def impact_ok(citations: int | None, *, year: int = 2021) -> Impact:
    return Impact(
        status="ok", semantic_scholar_id=f"s2-{citations}", citation_count=citations,
        influential_citation_count=None if citations is None else citations // 10,
        reference_count=40, venue="ICLR", publication_year=year,
        publication_date=f"{year}-06-17", fetched_at=FETCHED,
        tldr="Low-rank updates suffice.", open_access_pdf=None,
    )  # fmt: skip


def embed_ok(handle: str, tweet_id: str, text: str = "Our new paper") -> Embed:
    url = f"https://twitter.com/{handle}/status/{tweet_id}"
    return Embed(
        status="ok", fetched_at=FETCHED, text=text, html=f'<blockquote class="twitter-tweet"><p>{text}</p>',
        author_name=handle.title(), author_url=f"https://twitter.com/{handle}", url=url,
    )  # fmt: skip


def details_ok(
    favorites: int | None,
    replies: int | None = 3,
    *,
    history: Sequence[tuple[str, int | None, int | None]] = (),
    handle: str = "ada",
    urls: Sequence[str] = (),
) -> TweetDetails:
    return TweetDetails(
        status="ok", fetched_at=FETCHED, created_at=None, like_count=favorites, reply_count=replies,
        lang="en",
        text="Our new paper", author={"id": "12", "handle": handle, "name": handle.title(),
                                      "blue_verified": False},
        urls=[{"url": "https://t.co/x", "expanded_url": u} for u in urls],
        media=[{"type": "photo", "url": "https://pbs.twimg.com/media/x.jpg", "video_url": None,
                "alt_text": None}],
        possibly_sensitive=False,
        history=[{"observed_at": t, "like_count": f, "reply_count": r} for t, f, r in history],
    )  # fmt: skip


def tweet(
    tweet_id: str,
    handle: str = "ada",
    *,
    embed: Embed | None = None,
    details: TweetDetails | None = None,
    text: str = "Our new paper",
) -> Tweet:
    return Tweet(
        id=tweet_id, url=f"https://twitter.com/{handle}/status/{tweet_id}", author_handle=handle,
        author_name=handle.title(), lang="en", date_text="June 18, 2021", text=text,
        embed=embed or embed_ok(handle, tweet_id, text),
        details=details or TweetDetails(status="disabled"),
    )  # fmt: skip


def entry(
    the_post: Post,
    rank: int,
    arxiv_id: str | None,
    *,
    title: str = "A paper",
    tweets: Iterable[Tweet] = (),
    arxiv: ArxivMeta | None = None,
    impact: Impact | None = None,
    favorites: int | None = 10,
    retweets: int | None = 2,
    categories: Sequence[str] = ("cs.LG",),
) -> DigestEntry:
    if arxiv is None:
        arxiv = arxiv_ok(arxiv_id, title) if arxiv_id else arxiv_failed(error="no arXiv link")
    return DigestEntry(
        post=the_post, rank=rank, line=10 * rank, title=title, authors=["Ada Lovelace"],
        retweets=retweets, favorites=favorites, counts_at=the_post.published_at,
        abs_url=f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else None,
        pdf_url=f"https://arxiv.org/pdf/{arxiv_id}" if arxiv_id else None,
        categories=list(categories), abstract=LOREM, arxiv_id=arxiv_id, arxiv_version=None,
        arxiv_problem=None if arxiv_id else "no link", tweets=list(tweets), arxiv=arxiv,
        impact=impact or Impact(status="disabled"),
    )  # fmt: skip


def record(
    the_entry: DigestEntry,
    *,
    links: dict[str, list[str]] | None = None,
    code_urls: Sequence[str] = (),
    blocks: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The schema-3 record for ``the_entry``, checked against the schema.

    ``links`` sets a tweet's ``linked_arxiv_ids`` (and so ``links_paper``), which the link
    parser placeholder cannot produce yet; only tweets with details ok may have them.
    ``code_urls`` are given as found in tweets (source ``tweet``). ``blocks`` replaces fields
    of paper blocks (``hf``, ``openalex``, ``semantic_scholar``), which entries cannot carry.
    """
    result = build_record(the_entry)
    for t in result["tweets"]:
        if links and t["id"] in links:
            t["linked_arxiv_ids"] = links[t["id"]]
            t["links_paper"] = result["arxiv_id"] in links[t["id"]]
    result["code_urls"] = [{"url": url, "sources": ["tweet"]} for url in code_urls]
    for name, fields in (blocks or {}).items():
        result[name] = {**result[name], **fields}
    problems = schema_errors(result)
    assert problems == [], problems
    return result


def write_snapshot(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    """A snapshot as the crawler writes it: sorted by post date, slug, rank, source."""
    path.write_bytes(b"".join(dumps(r) for r in sorted(records, key=sort_key)))
    return path


def _synthetic_tweet(rng: random.Random, when: datetime, seq: int) -> Tweet:
    tid = tweet_id_at(when - timedelta(hours=rng.randint(1, 48)), seq)
    handle = f"user{seq % 997}"
    roll = rng.random()
    if roll < 0.6:
        favorites = int(rng.paretovariate(1.2) * 20)
        day = iso(when)
        details = details_ok(favorites, rng.randint(0, 50), handle=handle,
                             history=[(day, favorites, 1)])  # fmt: skip
    elif roll < 0.8:
        details = TweetDetails(status="tombstone", reason="This Post is unavailable.")
    else:
        details = TweetDetails(status="error", error="syndication answered HTTP 429")
    embed = (
        embed_ok(handle, tid, LOREM[: rng.randint(80, 280)])
        if rng.random() < 0.85
        else Embed(status="deleted", error="oEmbed answered HTTP 404")
    )
    return tweet(tid, handle, embed=embed, details=details, text=LOREM[:200])


def _synthetic_entry(
    rng: random.Random, the_post: Post, rank: int, when: datetime, pool: list[str]
) -> DigestEntry:
    if pool and rng.random() < 0.3:
        paper = rng.choice(pool[-300:])  # a paper listed again on a later day
    else:
        paper = f"{when:%y%m}.{len(pool):05d}"
        pool.append(paper)
    category = rng.choice(["cs.LG", "cs.CL", "cs.CV", "cs.AI", "stat.ML", "cs.RO", "q-bio.NC"])
    arxiv = (
        arxiv_ok(paper, f"Paper {paper}", category=category, summary=LOREM * 8)
        if rng.random() < 0.95
        else arxiv_failed()
    )
    impact = impact_ok(int(rng.paretovariate(1.1) * 5)) if rng.random() < 0.8 else None
    seq = int(paper.split(".")[1]) * 8 + rank
    tweets = [_synthetic_tweet(rng, when, seq * 4 + i) for i in range(rng.randint(0, 3))]
    return entry(
        the_post, rank, paper, title=f"Paper {paper}", tweets=tweets, arxiv=arxiv,
        impact=impact, favorites=int(rng.paretovariate(1.1) * 30), categories=[category],
    )  # fmt: skip


def synthetic_records(count: int, *, per_post: int = 24, seed: int = 0) -> Iterator[dict[str, Any]]:
    """``count`` valid records, about ``per_post`` a day (some days none), papers and tweets
    recurring as in the real digests."""
    rng = random.Random(seed)
    when = datetime(2021, 1, 1, 7, 55, 41, tzinfo=UTC)
    pool: list[str] = []
    made = 0
    while made < count:
        size = min(count - made, rng.randint(per_post // 2, per_post * 3 // 2))
        the_post = post(f"hot-papers-{when:%Y-%m-%d}", iso(when))
        for rank in range(1, size + 1):
            the_entry = _synthetic_entry(rng, the_post, rank, when, pool)
            code = [f"https://github.com/lab{len(pool) % 89}/{the_entry.arxiv_id}"]
            yield record(the_entry, code_urls=code if rng.random() < 0.3 else ())
        made += size
        when += timedelta(days=2 if rng.random() < 0.1 else 1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a synthetic schema-3 snapshot.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--records", type=int, default=7000)
    args = parser.parse_args(argv)
    with args.out.open("wb") as f:
        for r in synthetic_records(args.records):  # already in snapshot order
            f.write(dumps(r))
    print(json.dumps({"out": str(args.out), "records": args.records}))


if __name__ == "__main__":
    main()


LORA = "2106.09685"
LATE = "2106.00001"
DAY_A, DAY_B, DAY_C = "2021-06-19T07:55:41Z", "2021-06-21T07:40:00Z", "2021-06-23T08:00:00Z"
T1 = tweet_id_at(datetime(2021, 6, 18, 17, 0, tzinfo=UTC))
T2 = tweet_id_at(datetime(2021, 6, 18, 18, 0, tzinfo=UTC))
T3 = tweet_id_at(datetime(2021, 6, 18, 19, 0, tzinfo=UTC))
CODE = "https://github.com/microsoft/LoRA"


def hf_ok(upvotes: int, stars: int, history: Sequence[tuple[str, int, int]]) -> dict[str, Any]:
    """An ok ``hf`` block; ``history`` is (observed_at, upvotes, stars), the last fetch last."""
    return {
        "status": "ok", "error": None, "fetched_at": history[-1][0], "upvotes": upvotes,
        "comments": 1, "github_repo": CODE, "github_stars": stars, "project_page": None,
        "ai_summary": "Low-rank adapters.", "ai_keywords": ["LoRA"],
        "published_at": "2021-06-17T17:37:18.000Z", "submitted_on_daily_at": None,
        "history": [{"observed_at": t, "upvotes": u, "github_stars": s} for t, u, s in history],
    }  # fmt: skip


def openalex_ok(
    cited: int, by_year: dict[int, int], history: Sequence[tuple[str, int]]
) -> dict[str, Any]:
    """An ok ``openalex`` block; ``by_year`` as OpenAlex serves it (newest first, no zeros)."""
    return {
        "status": "ok", "error": None, "fetched_at": history[-1][0], "work_id": "W3168867926",
        "cited_by_count": cited,
        "counts_by_year": [{"year": y, "cited_by_count": n} for y, n in by_year.items()],
        "published_version": {"doi": None, "venue": "ICLR", "year": 2022, "type": "conference"},
        "is_oa": True, "primary_topic": "Natural Language Processing",
        "history": [{"observed_at": t, "cited_by_count": n} for t, n in history],
    }  # fmt: skip


def small_corpus() -> list[dict[str, Any]]:
    """Three digests whose papers and tweets recur, with every kind of status.

    LoRA is listed three times: arXiv v1 then v2 then an arXiv error (so its metadata must be
    v2's), citations 100 then 120 then an error. Tweet T1 is embedded twice, with a longer
    history the second time. 2106.00001 is not found first, found later.
    """
    a = post("hot-papers-2021-06-18", DAY_A)
    b = post("hot-papers-2021-06-20", DAY_B)
    c = post("hot-papers-2021-06-22", DAY_C)
    early = [("2021-06-19T08:00:00Z", 40, 1), ("2021-06-19T12:00:00Z", 50, 2)]
    t1_a = tweet(T1, "edwardjhu", details=details_ok(50, 2, history=early, handle="edwardjhu"))
    t1_b = tweet(T1, "edwardjhu", details=details_ok(
        70, 4, history=[*early, ("2021-06-21T08:00:00Z", 70, 4)], handle="edwardjhu"))  # fmt: skip
    t2 = tweet(T2, "ak", details=TweetDetails(status="tombstone", reason="Age-restricted"))
    t3 = tweet(T3, "gone", embed=Embed(status="deleted", error="oEmbed answered HTTP 404"),
               details=TweetDetails(status="error", error="syndication answered HTTP 500"))  # fmt: skip
    lora = "LoRA: Low-Rank Adaptation of Large Language Models"
    seen_a, seen_b = "2021-06-19T08:00:00.000Z", "2021-06-21T08:00:00.000Z"
    blocks_a = {
        "hf": hf_ok(10, 500, [(seen_a, 10, 500)]),
        "openalex": openalex_ok(45, {2023: 40, 2021: 5}, [(seen_a, 45)]),
    }
    blocks_b = {  # the latest ok blocks: LoRA's in papers; 2022 had no citation
        "hf": hf_ok(12, 650, [(seen_a, 10, 500), (seen_b, 12, 650)]),
        "openalex": openalex_ok(75, {2024: 30, 2023: 40, 2021: 5}, [(seen_a, 45), (seen_b, 75)]),
        "semantic_scholar": {"history": [{"observed_at": seen_b, "citation_count": 120,
                                          "influential_citation_count": 10}]},
    }  # fmt: skip
    return [
        record(entry(a, 1, LORA, title=lora, tweets=[t1_a, t2], favorites=229, retweets=2059,
                     arxiv=arxiv_ok(LORA, f"{lora} (v1)", category="cs.CL"),
                     impact=impact_ok(100)),
               links={T1: [LORA]}, code_urls=[CODE], blocks=blocks_a),
        record(entry(a, 2, LATE, title="Late paper", arxiv=arxiv_failed("not_found", "no such"),
                     impact=Impact(status="error", error="Semantic Scholar answered HTTP 500"),
                     categories=["stat.ML"])),
        record(entry(a, 3, None, title="No link", tweets=[t3], favorites=None, retweets=None)),
        record(entry(b, 1, LATE, title="Late paper",
                     arxiv=arxiv_ok(LATE, "Found later", category="stat.ML"))),
        record(entry(b, 2, LORA, title=lora, tweets=[t1_b], favorites=300,
                     arxiv=arxiv_ok(LORA, lora, version=2, category="cs.CL"),
                     impact=impact_ok(120)),
               links={T1: [LORA, "2106.00002"]},
               code_urls=[CODE, "https://github.com/other/lora"], blocks=blocks_b),
        record(entry(c, 1, LORA, title=lora, favorites=12,
                     arxiv=arxiv_failed(error="arXiv answered HTTP 503"),
                     impact=Impact(status="error", error="Semantic Scholar answered HTTP 429"))),
    ]  # fmt: skip
