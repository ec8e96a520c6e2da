"""Mojibake repair and byte decoding."""

from __future__ import annotations

import codecs

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.parsing.text import DecodeError, decode_bytes, repair_mojibake, squash_ws


@pytest.mark.parametrize(
    ("damaged", "expected"),
    [
        ("Francisco GuzmÃ¡n", "Francisco Guzmán"),  # cp1252
        ("Agnieszka SÅ‚owik, LÃ©on Bottou", "Agnieszka Słowik, Léon Bottou"),
        ("Piotr Doll√°r", "Piotr Dollár"),  # Mac Roman, a lone pair ftfy does not flag
        ("Va≈°keviƒçi≈´te", "Vaškevičiūte"),
        ("‚Äúeasy‚Äù", "“easy”"),
        ("\uf8ffüöÄ launch", "🚀 launch"),  # Mac Roman emoji
        ("Nope ğŸ™ƒ", "Nope 🙃"),  # cp1254: only Turkish Windows explains ğ for byte F0
        ("Ä°rsoy", "İrsoy"),
        ("Ù‡Ù€", "هـ"),
        ("ÂçòË™û", "単語"),
    ],
)
def test_reversible_damage_is_repaired(damaged: str, expected: str) -> None:
    assert repair_mojibake(damaged) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Bruno Lévy",
        "Here’s a great read",
        "VisionTransformerを使った画像認識",
        "⚔️: ✍️ 😄",
        "ESPAÑ”",  # decodes to a Cyrillic letter by accident: not mojibake
        "naïve café",
        "plain ascii",
    ],
)
def test_clean_text_is_never_altered(text: str) -> None:
    assert repair_mojibake(text) == text


@pytest.mark.parametrize(
    "damaged",
    [
        "kÅan",  # ō = C5 8D; cp1252 has no 0x8D, the byte was dropped
        "ğ˜©ğ˜°ğ˜¸",  # mathematical italics with 0x9D dropped: ambiguous, so untouched
    ],
)
def test_irreversible_damage_stays_as_it_is(damaged: str) -> None:
    assert repair_mojibake(damaged) == damaged


def test_partially_damaged_run_repairs_only_the_intact_characters() -> None:
    # 学 (E5 AD A6) survived and is repaired exactly. の (E3 81 AE) lost its 0x81: putting a
    # dropped byte back gives の or rare ideographs (CJK Extension A), and only の fits beside 学.
    assert repair_mojibake("å\xad¦ã®") == "学の"
    # 学 without its 0xAD (not a byte cp1252 drops) stays: many ideographs fit, all wrong. Japanese
    # is still the only writing system with a candidate for both, so の is mended.
    assert repair_mojibake("å¦ã®") == "å¦の"


_TEXT = st.text(
    alphabet=st.characters(
        codec="utf-8", categories=("Lu", "Ll", "Lo", "Nd", "Zs", "Po", "So", "Sm")
    ),
    max_size=40,
)


@given(_TEXT, st.sampled_from(["cp1252", "cp1254", "mac_roman"]))
def test_any_fully_preserved_mojibake_round_trips(text: str, codec: str) -> None:
    try:
        damaged = text.encode("utf-8").decode(codec)
    except UnicodeDecodeError:
        return  # a byte this charset cannot show was dropped: not reversible by design
    repaired = repair_mojibake(damaged)
    if text.isascii():
        assert repaired == text
    else:
        # Every multi-byte character is repaired unless its 2-char mojibake looked like real text.
        assert len(repaired) <= len(damaged)
        if all(len(c.encode()) > 2 for c in text if not c.isascii()):
            assert repaired == text


@given(st.text(max_size=200))
def test_repair_never_raises_and_keeps_ascii(text: str) -> None:
    out = repair_mojibake(text)
    assert [c for c in out if c.isascii()] == [c for c in text if c.isascii()]


def test_squash_ws() -> None:
    assert squash_ws("  a  sentence\n  wrapped \t") == "a sentence wrapped"


def test_decode_utf8_and_boms() -> None:
    assert decode_bytes("héllo".encode()) == ("héllo", "utf-8")
    assert decode_bytes(codecs.BOM_UTF8 + "héllo".encode()) == ("héllo", "utf-8-sig")
    assert decode_bytes("héllo".encode("utf-16")) == ("héllo", "utf-16")
    assert decode_bytes(codecs.BOM_UTF16_BE + "hé".encode("utf-16-be")) == ("hé", "utf-16")


def test_decode_legacy_single_byte() -> None:
    assert decode_bytes("Léon – café".encode("cp1252")) == ("Léon – café", "cp1252")


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"", "empty"), (b"  \n\n", "empty"), (bytes(range(256)) * 4, "binary")],
)
def test_decode_refuses_empty_and_binary(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_bytes(data)
