"""Synthetic "Hot Papers" digests at any size, drawn from the five real samples.

The pieces (titles, author lists, category lines, abstract sentences, tweet texts with their
links, hashtags, Japanese text and mojibake) are harvested from ``crawler/samples/*.txt`` and
recombined; the shape follows the samples' distributions:

* entries per post: 16-30 (the samples have 16, 16, 17, 24, 30);
* tweets per entry: 0/1/2/3/4 with weights 2/81/17/2/1 (103 sample entries);
* a paper is featured again in a later post with probability ~0.23, so a paper appears in
  ~1.3 posts on average; a repeated paper re-embeds one of its earlier tweets about half the time;
* ~7 % of tweets are Japanese (as in the samples), plus a sprinkle of other languages;
* ~3 % of titles carry LaTeX ``$...$``; ~2 % of titles/author lines get fresh mojibake
  (UTF-8 read as cp1252 or Mac Roman), on top of the damage the harvested tweets carry;
* new-style arXiv IDs ``YYMM.NNNNN`` from the weeks before the post (a few years back at most);
* tweet IDs are 19-digit snowflakes whose embedded time is when the tweet was "posted", and
  the date under each tweet matches it.

Everything is deterministic from ``--seed``. Dates run one post a day from 2020-06-01; when more
posts are asked for than fit before 2026, several posts share a day (slug suffix ``-2``, ...),
so IDs stay in plausible ranges. CLI::

    python -m benchmarks.corpus --posts 1000 --out /tmp/corpus --seed 0
"""

from __future__ import annotations

import argparse
import hashlib
import html
import math
import random
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "crawler" / "samples"

TWEETS_PER_ENTRY = {0: 2, 1: 81, 2: 17, 3: 2, 4: 1}  # counted in the five samples
TWEET_COUNTS, TWEET_WEIGHTS = list(TWEETS_PER_ENTRY), list(TWEETS_PER_ENTRY.values())
ENTRIES_PER_POST = (16, 30)
REPEAT_PAPER = 0.23  # P(an entry features a paper from the last weeks): ~1.3 posts per paper
REUSE_TWEET = 0.5  # P(a repeated paper re-embeds one of its earlier tweets)
LATEX_TITLE = 0.03
MOJIBAKE = 0.02
EXTRA_LANG = 0.03  # non-English tweets beyond the harvested Japanese ones
FIRST_DAY = datetime(2020, 6, 1, tzinfo=UTC)
LAST_DAY = datetime(2025, 12, 31, tzinfo=UTC)
TWITTER_EPOCH_MS = 1288834974657
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip

_LATEX = (
    "$O(n \\log n)$", "$\\ell_1$", "$\\mathcal{O}(1/\\sqrt{T})$", "$k$", "$\\epsilon$",
    "$\\mathbb{R}^d$", "$Q$", "$\\alpha$-Divergences", "$SE(3)$", "$1/t$",
)  # fmt: skip
_OTHER_LANG = (
    ("zh", "这篇论文提出了一种新的自监督学习方法，在多个基准上取得了最好的结果。"),
    ("ko", "대규모 언어 모델의 추론 능력을 향상시키는 간단한 방법을 제안한 논문입니다."),
    ("es", "Nuevo artículo: aprendizaje por refuerzo sin recompensas explícitas. ¡Genial!"),
    ("fr", "Un article très clair sur les réseaux de neurones équivariants. À lire !"),
    ("de", "Schöne Arbeit über Diffusionsmodelle für Moleküle – sehr lesenswert."),
    ("ja", "拡散モデルで画像編集を行う手法。学習不要で高品質な結果が得られるのが面白い。"),
    ("ja", "大規模言語モデルの推論能力を検証した論文。思考の連鎖の効果を丁寧に分析。"),
)
_HANDLE_PARTS = ("ml", "ai", "data", "neuro", "deep", "paper", "arxiv", "lab", "stat", "phys")


# --- harvesting the samples ---------------------------------------------------------------------
_HEAD = re.compile(r"^# \d+\.[ \t]+(.*?)[ \t]*$", re.M)
_BQ = re.compile(
    r'<blockquote class="twitter-tweet"><p lang="(?P<lang>[^"]*)" dir="ltr">(?P<p>.*?)</p>'
    r"&mdash; (?P<name>.*?) \(@(?P<handle>\w+)\)",
    re.S,
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


@dataclass
class Pools:
    titles: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)  # single names
    author_counts: list[int] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)  # whole "- [..](..) | ..." lines
    sentences: list[str] = field(default_factory=list)
    abstract_lengths: list[int] = field(default_factory=list)  # sentences per abstract
    tweets: list[tuple[str, str]] = field(default_factory=list)  # (lang, inner <p> html)
    people: list[tuple[str, str]] = field(default_factory=list)  # (name, handle)


@cache
def pools() -> Pools:
    out = Pools()
    people: dict[str, str] = {}
    for path in sorted(SAMPLES.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        heads = list(_HEAD.finditer(text))
        for i, m in enumerate(heads):
            end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
            body = text[m.end() : end]
            out.titles.append(m.group(1))
            paras = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
            authors = paras[0] if paras else ""
            names = [n.strip() for n in authors.split(",") if n.strip()]
            out.authors.extend(names)
            out.author_counts.append(max(1, len(names)))
            for line in body.splitlines():
                if line.startswith("- [") and "arxiv.org/list/" in line:
                    out.categories.append(line)
            prose = [
                p
                for p in paras[1:]
                if not p.startswith(("-", "<blockquote", "<script")) and "</blockquote>" not in p
            ]
            sentences = [s for p in prose for s in _SENTENCE.split(p) if s]
            out.sentences.extend(sentences)
            out.abstract_lengths.append(max(1, len(sentences)))
        for bq in _BQ.finditer(text):
            out.tweets.append((bq["lang"], bq["p"]))
            people.setdefault(bq["handle"], bq["name"])
    out.people = sorted((name, handle) for handle, name in people.items())
    return out


# --- the model --------------------------------------------------------------------------------
@dataclass
class Tweet:
    tweet_id: str
    name: str
    handle: str
    lang: str
    text_html: str
    when: datetime

    def blockquote(self) -> str:
        date = f"{MONTHS[self.when.month - 1]} {self.when.day}, {self.when.year}"
        url = f"https://twitter.com/{self.handle}/status/{self.tweet_id}?ref_src=twsrc%5Etfw"
        return (
            f'<blockquote class="twitter-tweet"><p lang="{self.lang}" dir="ltr">{self.text_html}'
            f'</p>&mdash; {self.name} (@{self.handle}) <a href="{url}">{date}</a></blockquote>\n'
            '<script async src="https://platform.twitter.com/widgets.js" charset="utf-8">'
            "</script>\n"
        )


@dataclass
class Paper:
    arxiv_id: str
    title: str
    authors: str
    categories: str
    abstract: str
    tweets: list[Tweet] = field(default_factory=list)


def mojibake(text: str, rng: random.Random) -> str:
    """UTF-8 bytes read as cp1252 or Mac Roman, as in the samples (undecodable bytes dropped)."""
    codec = rng.choice(("cp1252", "mac_roman"))
    return text.encode("utf-8").decode(codec, errors="ignore")


def snowflake(when: datetime, rng: random.Random) -> str:
    ms = int(when.timestamp() * 1000) - TWITTER_EPOCH_MS
    return str((ms << 22) | rng.getrandbits(22))


class Generator:
    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.pools = pools()
        self.used_ids: set[str] = set()
        self.recent: deque[tuple[datetime, Paper]] = deque()
        self.handles: list[tuple[str, str]] = list(self.pools.people)
        self.stats = {"posts": 0, "entries": 0, "tweet_embeds": 0, "repeat_papers": 0}

    # -- pieces ----------------------------------------------------------------------------
    def _new_id(self, day: datetime) -> str:
        rng = self.rng
        back = rng.choice((0, 0, 0, 0, 1, 1, 2)) if rng.random() < 0.95 else rng.randint(3, 30)
        month = (day.year * 12 + day.month - 1) - back
        year, mm = divmod(month, 12)
        yymm = f"{year % 100:02d}{mm + 1:02d}"
        top = 12000 + 1500 * (year - 2020)  # monthly submissions grow every year
        while True:
            arxiv_id = f"{yymm}.{rng.randint(1, top):05d}"
            if arxiv_id not in self.used_ids:
                self.used_ids.add(arxiv_id)
                return arxiv_id

    def _title(self) -> str:
        rng, titles = self.rng, self.pools.titles
        a, b = rng.choice(titles).split(" "), rng.choice(titles).split(" ")
        words = a[: max(1, len(a) // 2)] + b[len(b) // 2 :]
        if rng.random() < LATEX_TITLE:
            words.insert(rng.randint(0, len(words)), rng.choice(_LATEX))
        title = " ".join(words)
        if rng.random() < MOJIBAKE and not title.isascii():
            title = mojibake(title, rng)
        elif rng.random() < MOJIBAKE:
            title = title.replace(" ", " – ", 1) if rng.random() < 0.5 else title + " (Ré-visité)"
            title = mojibake(title, rng)
        return title

    def _authors(self) -> str:
        rng = self.rng
        n = rng.choice(self.pools.author_counts)
        names = [rng.choice(self.pools.authors) for _ in range(n)]
        line = ", ".join(dict.fromkeys(names))
        if rng.random() < MOJIBAKE:
            line = mojibake(line + ", Zoë Müller", rng)
        return line

    def _abstract(self) -> str:
        rng = self.rng
        n = rng.choice(self.pools.abstract_lengths)
        return " ".join(rng.choice(self.pools.sentences) for _ in range(n))

    def _person(self) -> tuple[str, str]:
        rng = self.rng
        if rng.random() < 0.6 and self.handles:
            return rng.choice(self.handles)
        first = rng.choice(self.pools.authors).split(" ")[0]
        handle = f"{rng.choice(_HANDLE_PARTS)}_{first.lower()[:6]}{rng.randint(1, 999)}"
        handle = re.sub(r"\W", "", handle)[:15] or f"user{rng.randint(1, 99999)}"
        person = (html.escape(first, quote=False) + " " + rng.choice(_HANDLE_PARTS).title(), handle)
        self.handles.append(person)
        return person

    def _tweet(self, day: datetime) -> Tweet:
        rng = self.rng
        if rng.random() < EXTRA_LANG:
            lang, text = rng.choice(_OTHER_LANG)
        else:
            lang, text = rng.choice(self.pools.tweets)
        when = day - timedelta(seconds=rng.randint(3600, 3 * 86400))
        name, handle = self._person()
        return Tweet(snowflake(when, rng), name, handle, lang, text, when)

    def _paper(self, day: datetime) -> Paper:
        return Paper(
            self._new_id(day),
            self._title(),
            self._authors(),
            self.rng.choice(self.pools.categories),
            self._abstract(),
        )

    # -- posts -----------------------------------------------------------------------------
    def post(self, index: int, total: int) -> tuple[str, str]:
        """(file name, text) of post ``index`` out of ``total``."""
        rng = self.rng
        days = (LAST_DAY - FIRST_DAY).days + 1
        per_day = max(1, math.ceil(total / days))
        day_no, nth = divmod(index, per_day)
        day = FIRST_DAY + timedelta(days=day_no)
        published = day + timedelta(days=rng.choice((1, 1, 1, 2, 3)), seconds=rng.randint(0, 86399))
        while self.recent and (day - self.recent[0][0]).days > 21:
            self.recent.popleft()

        n_entries = rng.randint(*ENTRIES_PER_POST)
        chosen = self._choose_papers(day, n_entries)
        date_s = day.strftime("%Y-%m-%d")
        slug = f"hot-papers-{date_s}" + (f"-{nth + 1}" if nth else "")
        front = (
            f"---\ntitle: Hot Papers {date_s}\ndate: {published.strftime('%Y-%m-%dT%H:%M:%S')}.Z\n"
            f'template: "post"\ndraft: false\nslug: "{slug}"\ncategory: "arXiv"\ntags:\n'
            '  - "arXiv"\n  - "Twitter"\n  - "Machine Learning"\n  - "Computer Science"\n'
            f'description: "Hot papers {date_s}"\n'
            'socialImage: "/media/flying-marine.jpg"\n\n---\n\n'
        )
        counts_at = published.strftime("%m/%d/%Y %H:%M:%S")
        parts = [front]
        ranked = sorted(((rng.paretovariate(1.2) * 40, p) for p in chosen), key=lambda x: -x[0])
        for rank, (score, paper) in enumerate(ranked, 1):
            parts.append(self._entry(rank, score, paper, day, counts_at))
        self.stats["posts"] += 1
        self.stats["entries"] += n_entries
        h = hashlib.sha1(f"{self.seed}:{index}".encode()).hexdigest()[:16]
        return f"{index:05d}_{h}.txt", "".join(parts)

    def _choose_papers(self, day: datetime, n_entries: int) -> list[Paper]:
        """The post's papers: some featured again from the last weeks, the rest new."""
        rng = self.rng
        chosen: list[Paper] = []
        in_post: set[str] = set()
        candidates = [p for _, p in self.recent]
        for _ in range(n_entries):
            paper = None
            if candidates and rng.random() < REPEAT_PAPER:
                pick = rng.choice(candidates)
                if pick.arxiv_id not in in_post:
                    paper = pick
                    self.stats["repeat_papers"] += 1
            if paper is None:
                paper = self._paper(day)
                self.recent.append((day, paper))
            in_post.add(paper.arxiv_id)
            chosen.append(paper)
        return chosen

    def _entry(self, rank: int, score: float, paper: Paper, day: datetime, counts_at: str) -> str:
        """One ``# N.`` entry with its tweets (a repeated paper may re-embed an earlier one)."""
        rng = self.rng
        n_tweets = rng.choices(TWEET_COUNTS, weights=TWEET_WEIGHTS)[0]
        tweets: list[Tweet] = []
        if paper.tweets and rng.random() < REUSE_TWEET and n_tweets:
            tweets.append(rng.choice(paper.tweets))
        while len(tweets) < n_tweets:
            tweets.append(self._tweet(day))
        for t in tweets:
            if t not in paper.tweets:
                paper.tweets.append(t)
        aid = paper.arxiv_id
        self.stats["tweet_embeds"] += len(tweets)
        return (
            f"# {rank}. {paper.title}\n\n{paper.authors}\n\n"
            f"- retweets: {int(score * 10)}, favorites: {rng.randint(0, 300)} ({counts_at})\n\n"
            f"- links: [abs](https://arxiv.org/abs/{aid}) | [pdf](https://arxiv.org/pdf/{aid})\n"
            f"{paper.categories}\n\n{paper.abstract}\n\n"
            + "".join(t.blockquote() for t in tweets)
            + "\n\n\n\n"
        )


def generate(posts: int, out: Path, seed: int = 0) -> dict[str, int]:
    """Write ``posts`` digests into ``out`` (created); returns counts."""
    out.mkdir(parents=True, exist_ok=True)
    gen = Generator(seed)
    for i in range(posts):
        name, text = gen.post(i, posts)
        (out / name).write_text(text, encoding="utf-8")
    return dict(gen.stats)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posts", type=int, default=10)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    stats = generate(args.posts, args.out, args.seed)
    print(" ".join(f"{k}={v}" for k, v in stats.items()), f"-> {args.out}")


if __name__ == "__main__":
    main()
