"""Parsing what the services answer: arXiv Atom feeds and oEmbed JSON."""

from __future__ import annotations

import json

import pytest

from crawler.downloader.contract import AnswerUnusable, Politeness
from crawler.parsing.arxiv_ids import MalformedArxivId, arxiv_id_from_url, parse_arxiv_id
from crawler.services.arxiv import ApiError, build_request, match_results, parse_feed
from crawler.services.oembed import parse_oembed

FEED = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"
      xmlns:arxiv="http://arxiv.org/schemas/atom">
  <title type="html">ArXiv Query: id_list=2106.09685,hep-th/9901001v1,2101.00001</title>
  <opensearch:totalResults>2</opensearch:totalResults>
  <opensearch:startIndex>0</opensearch:startIndex>
  <opensearch:itemsPerPage>3</opensearch:itemsPerPage>
  <entry>
    <id>http://arxiv.org/abs/2106.09685v2</id>
    <updated>2021-10-16T18:26:32Z</updated>
    <published>2021-06-17T17:37:18Z</published>
    <title>LoRA: Low-Rank Adaptation of Large
  Language Models</title>
    <summary>  An important paradigm &amp; more.
</summary>
    <author><name>Edward J. Hu</name><arxiv:affiliation>Microsoft</arxiv:affiliation></author>
    <author><name>Yelong Shen</name></author>
    <arxiv:comment>Draft V2</arxiv:comment>
    <link href="http://arxiv.org/abs/2106.09685v2" rel="alternate" type="text/html"/>
    <link title="pdf" href="http://arxiv.org/pdf/2106.09685v2" rel="related" type="application/pdf"/>
    <arxiv:primary_category xmlns:arxiv="http://arxiv.org/schemas/atom" term="cs.CL"/>
    <category term="cs.CL" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/>
  </entry>
  <entry>
    <id>http://arxiv.org/abs/hep-th/9901001v1</id>
    <updated>1999-01-01T00:00:00Z</updated>
    <published>1999-01-01T00:00:00Z</published>
    <title>Old</title><summary>s</summary>
    <author><name>A</name></author>
    <arxiv:doi>10.1000/xyz</arxiv:doi>
    <arxiv:journal_ref>J. Phys. 1 (1999)</arxiv:journal_ref>
    <arxiv:primary_category term="hep-th"/>
    <category term="hep-th"/>
  </entry>
</feed>
"""

ERROR_FEED = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>ArXiv Query: id_list=abc</title>
<entry><id>https://arxiv.org/api/errors#incorrect_id_format_for_abc</id><title>Error</title>
<summary>incorrect id format for abc</summary></entry></feed>"""


def test_feed_into_arxiv_results_and_records() -> None:
    page = parse_feed(FEED)
    assert (page.total_results, len(page.results)) == (2, 2)
    lora = page.results[0]
    assert lora.title == "LoRA: Low-Rank Adaptation of Large Language Models"
    assert lora.get_short_id() == "2106.09685v2"
    metas = match_results(["2106.09685", "hep-th/9901001v1", "2101.00001"], page)
    ok = metas["2106.09685"]
    assert (ok.status, ok.versioned_id, ok.version) == ("ok", "2106.09685v2", 2)
    assert ok.authors == [
        {"name": "Edward J. Hu", "affiliations": ["Microsoft"]},
        {"name": "Yelong Shen", "affiliations": []},
    ]
    assert ok.abstract == "An important paradigm & more."
    assert (ok.published_at, ok.updated_at) == ("2021-06-17T17:37:18Z", "2021-10-16T18:26:32Z")
    assert (ok.primary_category, ok.categories) == ("cs.CL", ["cs.CL", "cs.LG"])
    assert (ok.comment, ok.journal_ref, ok.doi) == ("Draft V2", None, None)
    assert ok.abs_url == "https://arxiv.org/abs/2106.09685v2"
    assert ok.pdf_url == "https://arxiv.org/pdf/2106.09685v2"
    old = metas["hep-th/9901001v1"]
    assert (old.versioned_id, old.doi, old.journal_ref) == (
        "hep-th/9901001v1",
        "10.1000/xyz",
        "J. Phys. 1 (1999)",
    )
    assert metas["2101.00001"].status == "not_found"


def test_subject_class_ids_match_arxiv_canonical_answer() -> None:
    # arXiv answers math.GT/0309136 with its canonical id math/0309136vN.
    feed = FEED.replace(b"hep-th/9901001v1", b"math/0309136v1")
    metas = match_results(["math.GT/0309136"], parse_feed(feed))
    assert metas["math.GT/0309136"].status == "ok"
    assert metas["math.GT/0309136"].versioned_id == "math/0309136v1"


def test_version_asked_for_must_match() -> None:
    metas = match_results(["2106.09685v1"], parse_feed(FEED))
    assert metas["2106.09685v1"].status == "not_found"


def test_error_feed_is_an_api_error() -> None:
    with pytest.raises(ApiError, match="incorrect id format for abc"):
        parse_feed(ERROR_FEED)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"<html><body>arXiv is down for maintenance</body></html>", "HTML page"),
        (FEED[: len(FEED) // 2], "unparseable"),
        (b"", "not an Atom feed"),
        (b'{"json": true}', "not an Atom feed"),
    ],
)
def test_unusable_answers_are_refused(body: bytes, match: str) -> None:
    with pytest.raises(AnswerUnusable, match=match):
        parse_feed(body)


def test_entity_expansion_bomb_is_not_expanded() -> None:
    lol = b'<!ENTITY lol "lololololololololololololololololololololololololololololololololol">'
    defs = [lol] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
        for i in range(1, 9)
    ]
    bomb = (
        b'<?xml version="1.0"?>\n<!DOCTYPE feed [' + b"".join(defs) + b"]>\n"
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/abs/2101.00001v1'
        b"</id><published>2021-01-01T00:00:00Z</published><updated>2021-01-01T00:00:00Z</updated>"
        b"<title>&lol8;</title></entry></feed>"
    )
    # The DOCTYPE is not refused before the parser: the parser itself must refuse the bomb
    # (libxml2's amplification limit) or leave it unexpanded.
    try:
        page = parse_feed(bomb)
    except AnswerUnusable as exc:
        assert str(exc).startswith("unparseable feed")  # refused by the parser, not the pre-check
        return
    assert len(page.results[0].title) < 1000  # 10^8 "lol"s were never built


def test_external_entities_are_not_fetched(tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    body = (
        f'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/abs/2101.00001v1'
        "</id><published>2021-01-01T00:00:00Z</published><updated>2021-01-01T00:00:00Z</updated>"
        "<title>&x;</title></entry></feed>"
    ).encode()
    page = parse_feed(body)  # reaches the parser, which neither fetches nor expands
    assert len(page.results) == 1
    assert "TOP SECRET" not in page.results[0].title


def test_ids() -> None:
    assert parse_arxiv_id("2106.09685v2").version == 2
    assert parse_arxiv_id("math.GT/0309136").base == "math.GT/0309136"
    assert arxiv_id_from_url("https://arxiv.org/pdf/2106.09685.pdf").base == "2106.09685"
    for bad in ("abc", "2113.00001", "2106.123", "hep-th/99010", "2106.09685v0"):
        with pytest.raises(MalformedArxivId):
            parse_arxiv_id(bad)


def test_request_sets_max_results_and_switches_to_post_when_long() -> None:
    polite = Politeness(concurrency=1, delay=3.0)
    short = build_request("http://h/api/query", ["2106.09685", "hep-th/9901001"], polite, None)
    assert short.method == "GET"
    assert "max_results=2" in short.url and "id_list=2106.09685%2Chep-th%2F9901001" in short.url
    many = [f"2106.{n:05d}" for n in range(300)]
    long = build_request("http://h/api/query", many, polite, None)
    assert long.method == "POST" and b"max_results=300" in long.body
    assert long.meta["download_slot"] == "arxiv"


def test_oembed() -> None:
    html = (
        '<blockquote class="twitter-tweet"><p lang="en" dir="ltr">Hi<br>there <a href="https://t.co/x">'
        "https://t.co/x</a></p>&mdash; Ada (@ada) "
        '<a href="https://twitter.com/ada/status/1?ref_src=twsrc%5Etfw">June 1, 2021</a></blockquote>\n'
    )
    body = json.dumps(
        {"url": "https://twitter.com/ada/status/1", "author_name": "Ada", "html": html,
         "author_url": "https://twitter.com/ada", "type": "rich"}
    ).encode()  # fmt: skip
    embed = parse_oembed(body)
    assert (embed.status, embed.text) == ("ok", "Hi\nthere https://t.co/x")
    assert (embed.author_name, embed.author_url) == ("Ada", "https://twitter.com/ada")
    with pytest.raises(AnswerUnusable):
        parse_oembed(b'{"html": ')
    with pytest.raises(AnswerUnusable):
        parse_oembed(b'{"type": "rich"}')
