"""Mojibake where cp1252/cp1254 dropped a byte: mended where only one character fits the script
around it, left alone where several do. Clean text is never touched."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawler.parsing.digest import Digest, parse_digest_bytes
from crawler.parsing.text import repair_mojibake
from crawler.sources import sample_dir


def _sample_000() -> Digest:
    path = next(sample_dir().glob("000_*.txt"))
    return parse_digest_bytes(path.read_bytes(), path.name)


def _field(digest: Digest, rank: int, name: str) -> str:
    entry = next(e for e in digest.entries if e.rank == rank)
    if name == "title":
        return entry.title
    return entry.tweets[int(name.removeprefix("tweets[").split("]")[0])].text


# The eight fields of the samples that lost a byte. Where one character fits, it is back
# (の, が, 𝘩 …); where several fit (ã‚ is あ, め, ろ, わ …; ãƒ is チ, ノ, マ …; kanji without their
# byte; the ” after "Trade", which might as well be ‐ or „) the damage stays as it was.
EIGHT = [
    (6, "tweets[0]",
     "Happy New Year!!\xa0 I am super excited to share our new pre-print “Fully Non-autoregressive "
     "Neural Machine Translation: Tricks of the Tradeâ€, joint work with @XiangKong4 . \nPlease "
     "check out https://t.co/NSzUtZr7Fb\n(1/2) pic.twitter.com/YUdcEocEZg"),
    (9, "tweets[0]",
     'Building upon "𝘩𝘰𝘸 𝘮𝘶𝘤𝘩 knowledge can you pack into the parameters of a language model?", '
     'have you wondered "𝘸𝘩𝘢𝘵 knowledge do you want to pack into the parameters of a language '
     'model?" Check out our new preprint (https://t.co/yDdixrPy2l) on this problem! 1/n '
     "pic.twitter.com/PAa5t8bFvJ"),
    (12, "tweets[1]",
     "特定のå¦習データの有無やãの摂動が予測çµæœにä¸える影響を表す影響関数を求ã‚るには計算コストが"
     "大ãかった。FASTIFは 1) 評価データの特徴ベクトルと似たå¦習データをkNNでçµり込む 2) ヘシアンの"
     "逆行列をhvpとãƒイãƒン級数経由で求ã‚ることで高速化。80å€の高速化をé”æˆhttps://t.co/Nw5cJSuuSZ"),
    (14, "tweets[0]",
     "TransTrackは複数物体トラッã‚ングå•題にTransformerを利用。ç¾フレームから候補ã‚ーを抽出しã€"
     "å‰フレームの検出çµæœ由æ¥のクエリとãƒッãƒングしトラッã‚ング。さらにå¦習å¯能なクエリとãƒッãƒ"
     "ングし新出物体の検出を行ã†。複雑な従æ¥手法に比べå˜純でã‚りながら高性能https://t.co/F1YzRgPha4"),
    (14, "tweets[2]",
     "オブジェクトトラッã‚ングにTransformerを使用した研究。Decoderは物体検出と(å‰画åƒ)オブジェクト"
     "ä½置æ¨定用の2つでãれãれ(å¦習å¯能な)物体検出用クエリã€オブジェクト特徴を入力とする。Encoderで"
     "計算したå‰後画åƒ特徴をKeyとしてDecoder内でCross Attentionしä½置をæ¨定https://t.co/loZ1n2eoS9"),
    (16, "tweets[0]",
     "ã‚けましておã‚でとうございます🌅ğŸ\nä¸確実性下&é™られた観測だけから組åˆせ最é©化å•題を解ã"
     "一般的なæ\xa0組みでã‚る確ç‡的組åˆせ最é©腕è˜別に関するちょっとしたReview記事をæ‰山先生と本多"
     "先生と一緒に書かせてもらいました🙂\n（プレプリントhttps://t.co/Q7BFxyY0Y7）\n今年も宜しãお願い"
     "しますğŸ🌅 pic.twitter.com/LyZbZHcTny"),
    (22, "tweets[0]",
     "å˜èª埋ã‚込みベクトルå¦習でCBOWがSkip-gramに性能で劣っているのはç¾在の実装の更新å¼が間é•って"
     "いるとの指摘 https://t.co/NPciw2FHlp ãれに対しã€実装の著者が実装の別の変更がåŸ因ではないかと"
     "指摘。 真相はまだä¸æ˜https://t.co/siyDdi4Bgv https://t.co/QUI2LNxB5j"),
    (22, "title", "kÅan: A Corrected CBOW Implementation"),
]  # fmt: skip


@pytest.mark.parametrize(("rank", "name", "expected"), EIGHT, ids=[f"{r}-{n}" for r, n, _ in EIGHT])
def test_the_eight_damaged_sample_fields(rank: int, name: str, expected: str) -> None:
    assert _field(_sample_000(), rank, name) == expected


@pytest.mark.parametrize(
    ("damaged", "expected"),
    [
        # All five hiragana lost 0x81: each other's neighbours, with a kanji further on.
        ("ã‚ã‘ã¾ã—ã¦ 確", "ã‚けまして 確"),  # ã‚ has eight hiragana candidates: stays
        ("確 ã“ã‚“ã«ã¡ã¯", "確 こんにちは"),
        # A particle between two Latin words, in a Japanese text.
        ("ä½置を Keyã¨ã—ã¦Decoder", "ä½置を KeyとしてDecoder"),
        ("Transformerã®Decoderã¯物体", "TransformerのDecoderは物体"),
        # Mathematical letters count as Latin letters; the text around is Latin.
        ('upon "ğ˜©ğ˜°ğ˜¸ ğ˜®ğ˜¶ğ˜¤ğ˜©" knowledge', 'upon "𝘩𝘰𝘸 𝘮𝘶𝘤𝘩" knowledge'),
        ("efï¬cient", "efﬁcient"),  # the ligature ﬁ (EF AC 81)
    ],
)
def test_a_lost_byte_is_put_back_where_only_one_character_fits(damaged: str, expected: str) -> None:
    assert repair_mojibake(damaged) == expected


@pytest.mark.parametrize(
    "damaged",
    [
        "kÅan",  # ō, ŏ, Ő, ŝ, Ł, Ŏ and Ş all fit a Latin word
        "Åódź",  # Łódź: Ł lost its 0x81, but ō, ŏ … fit as well
        "ã‚ã‘ã¾ã—ã¦",  # no clean letter anywhere: hiragana and rare ideographs fit alike
        "ğ˜©ğ˜°ğ˜¸",  # alone: Latin (𝘩) and Linear A fit alike
        "ãƒイãƒン",  # katakana: チ, ネ, ノ, ハ, バ, ポ, マ
        "Tradeâ€, joint",  # ”, „, ‐ and ⁀ are all punctuation
        "a ä¸確実",  # 丁, 不, 与, 丏, 丐, 丝, 丞 are all ideographs
    ],
)
def test_where_several_characters_fit_the_text_stays(damaged: str) -> None:
    assert repair_mojibake(damaged) == damaged


@pytest.mark.parametrize(
    "clean",
    [
        "“irmã” e 日本語",  # Portuguese ã and a quote beside Japanese: ã” is not ご
        "café—thé",
        "Curaçao”",
        "Ölund: Åsa Ñandú",
        "À l’école — déjà",
    ],
)
def test_clean_text_with_lookalike_sequences_is_untouched(clean: str) -> None:
    assert repair_mojibake(clean) == clean


# --- properties -------------------------------------------------------------------------------

_ENGLISH = ["the", "model", "Transformer", "BERT", "data", "of", "in", "GPT-3", "2021", "is"]
_LANGUAGES = {
    "latin": ["café", "naïve", "Guzmán", "Dollár", "Słowik", "Łódź", "Vaškevičiūtė", "São",
              "irmã", "Ölund", "Åsa", "Ñandú", "İrsoy", "ağaç", "Straße", "façade", "kōan",
              "Nguyễn", "tiếng", "Việt", "déjà", "à", "Ça", "Øresund", "Þór", "ĳ"],
    "japanese": ["あけまして", "おめでとう", "学習", "データ", "の", "を", "は", "高速化",
                 "トラッキング", "ノイマン級数", "特徴ベクトル", "ちょっと", "ー", "々"],
    "chinese": ["单词", "研究", "模型", "数据"],
    "korean": ["한국어", "모델", "데이터"],
    "greek": ["Ελλάδα", "μοντέλο", "αβγ"],
    "cyrillic": ["Привет", "модель", "данные"],
    "math": ["𝘩𝘰𝘸", "𝘮𝘶𝘤𝘩", "𝐁𝐄𝐑𝐓", "ℝ"],
    "symbols": ["😄", "⚔️", "🙃", "✍️", "🥳", "→", "≈", "€5", "©", "°C", "±"],
}  # fmt: skip
_SEPARATORS = [" ", ", ", ". ", " — ", " “", "” ", "’s ", "… ", "\n", " (", ") ", "、", "。",
               "「", "」", "\xa0", ": ", " – ", "!"]  # fmt: skip


@st.composite
def _clean_text(draw: st.DrawFn) -> str:
    """Words of English and one other language, joined by spaces and punctuation."""
    words = _ENGLISH + _LANGUAGES[draw(st.sampled_from(sorted(_LANGUAGES)))]
    parts = draw(st.lists(st.tuples(st.sampled_from(words), st.sampled_from(_SEPARATORS))))
    return "".join(w + s for w, s in parts)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_clean_text())
def test_clean_text_round_trips_untouched(text: str) -> None:
    assert repair_mojibake(text) == text


# What the digests hold: ASCII, kana, kanji, Hangul, Cyrillic, mathematical letters. None of these
# is a character the charsets show, which is what makes a second pass see nothing new.
def _block(first: int, last: int) -> st.SearchStrategy[str]:
    return st.characters(min_codepoint=first, max_codepoint=last, categories=["L", "M", "N", "P"])


_CHARS = st.one_of(
    st.sampled_from(list("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 ,.-!?()'\"")),
    _block(0x3041, 0x30FF),  # kana
    _block(0x4E00, 0x9FFF),  # kanji
    _block(0xAC00, 0xD7A3),  # Hangul
    _block(0x0410, 0x044F),  # Cyrillic
    _block(0x1D608, 0x1D63B),  # mathematical sans-serif italic
    st.sampled_from(list("、。「」（）Łō")),
)


@st.composite
def _damaged(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    """Text read through cp1252 or cp1254, which lose the bytes they cannot show, and per
    character (original, damaged form)."""
    codec = draw(st.sampled_from(["cp1252", "cp1254"]))
    chars = draw(st.lists(_CHARS, max_size=30))
    pairs = [(c, c.encode("utf-8").decode(codec, errors="ignore")) for c in chars]
    return "".join(d for _, d in pairs), pairs


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_damaged())
def test_repair_is_idempotent(damaged: tuple[str, list[tuple[str, str]]]) -> None:
    once = repair_mojibake(damaged[0])
    assert repair_mojibake(once) == once


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_damaged())
def test_every_character_is_either_right_or_still_damaged(
    damaged: tuple[str, list[tuple[str, str]]],
) -> None:
    """A mended character is the one that was there: never a plausible-looking wrong one."""
    text, pairs = damaged
    out = repair_mojibake(text)
    at = 0
    for original, form in pairs:
        if out.startswith(original, at):
            at += len(original)
        else:
            assert out.startswith(form, at), (out[at:], original, form)
            at += len(form)
    assert at == len(out)


@given(st.text(max_size=200))
def test_repair_never_raises_on_any_text(text: str) -> None:
    assert isinstance(repair_mojibake(text), str)
