"""Byte decoding and mojibake repair for digest text.

The digests were sometimes decoded as Windows-1252 or Mac Roman and saved again as UTF-8. Each
damaged character is then a run of 2-4 characters of that single-byte charset whose bytes form one
valid UTF-8 sequence, so it can be undone exactly by re-encoding. ftfy's whole-string heuristics
were tried first and missed the Mac Roman damage in the samples (e.g. ``Doll√°r``, emoji), and
partially "fixed" runs with dropped bytes; ftfy's badness check still guards the rare ambiguous
case (see below).

Where a byte the charset has no character for was dropped on the way (cp1252: 81 8D 8F 90 9D;
cp1254 also 8E 9E), the sequence is one byte short. It is mended only where putting one such byte
back is the only way to get a letter of the script around it (``ã®`` beside kanji was の; see
:func:`_resolve`); where several fit (``kÅan``: ō, ŏ, Ő, ŝ and Ł all fit a Latin word) it stays
as it is. Scripts come from Unicode character names, as the standard library has no Script
property; Japanese and Korean mix scripts in one word and count as one writing system each.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from ftfy.badness import is_bad

# The charsets the samples were mis-decoded with (cp1254, Turkish, differs from cp1252 in six
# letters; sample 000 has "ğŸ™ƒ" for 🙃, which only cp1254 explains).
MOJIBAKE_CODECS = ("cp1252", "cp1254", "mac_roman")

_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_WS = re.compile(r"\s+")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f]")


def _byte_map(codec: str) -> dict[str, int]:
    table = {}
    for b in range(0x80, 0x100):
        try:
            table[bytes([b]).decode(codec)] = b
        except UnicodeDecodeError:
            continue  # undefined in this charset (cp1252: 81 8D 8F 90 9D)
    return table


_BYTES = {codec: _byte_map(codec) for codec in MOJIBAKE_CODECS}
# Bytes a charset has no character for, so a decoder dropped them. Mac Roman shows all 256.
_DROPPED = {
    codec: bytes(b for b in range(0x80, 0x100) if b not in _BYTES[codec].values())
    for codec in ("cp1252", "cp1254")
}
# Non-ASCII characters that may be a byte of mojibake: as neighbours they prove nothing.
_SHOWABLE = frozenset(char for table in _BYTES.values() for char in table)
_UNWANTED = ("Cc", "Cs", "Co", "Cn")  # nobody wrote a control, surrogate or unassigned point


def _seq_len(lead: int) -> int:
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


def _is_continuation(table: dict[str, int], char: str) -> bool:
    return 0x80 <= table.get(char, 0) <= 0xBF


class _Repaired(str):
    """Text an exact repair produced: provably clean, so it counts as a neighbour."""


@dataclass(slots=True)
class _Gap:
    """A UTF-8 sequence one dropped byte short: ``raw`` as it stands, ``fixed`` once mended."""

    raw: str
    fixed: str | None = None


_Piece = str | _Gap


def _decode_at(run: str, i: int, table: dict[str, int]) -> tuple[str, int]:
    """The character whose complete UTF-8 sequence starts at ``run[i]``, and its length."""
    lead = table.get(run[i])
    # A no-break space leads a Mac Roman sequence (CA), but in clean text it is just a space.
    n = _seq_len(lead) if lead is not None and not run[i].isspace() else 0
    if not n or i + n > len(run):
        return "", 0
    chunk = [table.get(c) for c in run[i : i + n]]
    if None in chunk:
        return "", 0
    try:
        char = bytes(chunk).decode("utf-8")  # type: ignore[arg-type]
    except UnicodeDecodeError:
        return "", 0
    return ("", 0) if unicodedata.category(char) in _UNWANTED else (char, n)


def _repair_run(run: str, codec: str) -> tuple[list[tuple[int, int, str]], int]:
    """Undo ``codec`` mojibake inside one run of non-ASCII characters.

    Returns each repair as ``(start, end, character)`` and how many characters repairs consumed.
    Characters the codec cannot produce, or bytes that do not form a complete UTF-8 sequence,
    stay untouched.
    """
    table = _BYTES[codec]
    repairs: list[tuple[int, int, str]] = []
    repaired = i = 0
    while i < len(run):
        char, n = _decode_at(run, i, table)
        if n:
            repairs.append((i, i + n, char))
            repaired += n
        i += n or 1
    return repairs, repaired


def _pieces(run: str, shorts: list[int], repairs: list[tuple[int, int, str]]) -> list[_Piece]:
    """The run with its repairs applied and the sequences a byte short in between marked
    (``shorts``: :func:`_short_sequences` of the run)."""
    out: list[_Piece] = []
    at = 0
    for start, end, char in [*repairs, (len(run), len(run), "")]:
        out += _split_gaps(run, shorts, at, start)
        if char:
            out.append(_Repaired(char))
        at = end
    return out


_LOSSY = {**_BYTES["cp1254"], **_BYTES["cp1252"]}  # how the charsets that lose bytes read a char


def _score(pieces: list[_Piece], repaired: int, table: dict[str, int], lossy: bool) -> int:
    """How well a reading explains a run: characters repaired or a byte short, less characters
    left over that would be bytes of a broken sequence. A charset that loses bytes excuses a
    lead byte left alone (its continuation bytes may be the lost ones); Mac Roman loses none."""
    score = repaired
    for piece in pieces:
        if isinstance(piece, _Gap):
            score += len(piece.raw) if len(piece.raw) > 1 else 0  # a lone Å proves nothing
        elif not isinstance(piece, _Repaired):
            for char in piece:
                byte = table.get(char, 0)
                score -= 0x80 <= byte <= 0xBF or (not lossy and _seq_len(byte) > 0)
    return score


def _fix_run(match: re.Match[str]) -> list[_Piece]:
    run = match.group(0)
    shorts = _short_sequences(run)
    plain = _pieces(run, shorts, [])
    best, best_score, best_repairs = plain, _score(plain, 0, _LOSSY, lossy=True), []
    for codec, table in _BYTES.items():
        # Mojibake of one charset consists only of that charset's characters; a charset that
        # cannot produce the whole run would only find accidental sequences in it.
        if not all(c in table for c in run):
            continue
        repairs, count = _repair_run(run, codec)
        if not count:
            continue
        pieces = _pieces(run, shorts, repairs)
        # The reading that explains the run best wins, so cp1252 damage with lost bytes is not
        # outvoted by accidental Mac Roman sequences in it ("‚ãã" is not ⋋).
        score = _score(pieces, count, table, lossy=codec in _DROPPED)
        if score > best_score:
            best, best_score, best_repairs = pieces, score, repairs
    if len(best_repairs) == 1 and not _plausible_pair(match, *best_repairs[0]):
        return plain
    return best


def _plausible_pair(match: re.Match[str], start: int, end: int, fixed: str) -> bool:
    """Accept a run's only repair, if it is two characters, only where it is clearly mojibake.

    Two characters can decode by accident ("Ñ”" would become a Cyrillic letter, "—Ö" in
    "Ñandú—Ölund" too). We accept them when ftfy's badness heuristic flags the original, or when
    the result is a Latin letter inside a Latin word (``Doll√°r`` -> ``Dollár``), which ftfy does
    not flag on its own.
    """
    if end - start != 2 or is_bad(match.group(0)[start:end]):
        return True
    text, start, end = match.string, match.start() + start, match.start() + end
    before = text[start - 1] if start else ""
    after = text[end] if end < len(text) else ""
    return (
        fixed.isalpha()
        and unicodedata.name(fixed, "").startswith("LATIN")
        and ((before.isascii() and before.isalpha()) or (after.isascii() and after.isalpha()))
    )


# --- sequences one dropped byte short -------------------------------------------------------

_NO_LETTER = "no letter"  # punctuation, symbols, digits, spaces: candidates all the same
_NOT_LETTERS = frozenset({_NO_LETTER})
# Writing systems that mix scripts within a word (Unicode TS #39 treats them as one).
_JAPANESE = frozenset({"HAN", "HIRAGANA", "KATAKANA"})
_KOREAN = frozenset({"HAN", "HANGUL"})


@lru_cache(maxsize=8192)
def _script(char: str) -> str:
    """A letter's script, from its Unicode name (the standard library has no Script property).

    Compatibility forms count as what they stand for (𝘩 is a Latin h). Ideographs outside the
    common blocks (CJK Extension A on) get a script of their own: they are rare, so they only fit
    text that already uses them. What is no letter or mark gets :data:`_NO_LETTER`.
    """
    if unicodedata.category(char)[0] not in "LM":
        return _NO_LETTER
    folded = unicodedata.normalize("NFKC", char)
    if len(folded) == 1 and folded != char:
        return _script(folded)
    if 0x4E00 <= ord(char) <= 0x9FFF or 0xF900 <= ord(char) <= 0xFAFF:
        return "HAN"
    name = unicodedata.name(char, "UNNAMED")  # Tangut, Khitan … have no name here: still letters
    if name.startswith("CJK"):
        return "HAN-RARE"
    word = name.split(" ", 1)[0].split("-", 1)[0]  # KATAKANA-HIRAGANA PROLONGED SOUND MARK
    return "HAN" if word == "IDEOGRAPHIC" else word


@lru_cache(maxsize=4096)
def _candidates(raw: str) -> frozenset[str]:
    """Every character ``raw`` may have been before one byte its charset cannot show was lost."""
    found: set[str] = set()
    for codec, dropped in _DROPPED.items():
        table = _BYTES[codec]
        if not all(c in table for c in raw):
            continue
        seq = bytes(table[c] for c in raw)
        for byte in dropped:
            for at in range(1, len(seq) + 1):
                try:
                    char = (seq[:at] + bytes([byte]) + seq[at:]).decode("utf-8")
                except UnicodeDecodeError:
                    continue
                if unicodedata.category(char) not in _UNWANTED:
                    found.add(char)
    return frozenset(found)


_LEADS = frozenset(c for c, b in _LOSSY.items() if _seq_len(b))


def _short_sequence(run: str, i: int) -> int:
    """Length of a UTF-8 sequence exactly one byte short at ``run[i]``, else 0.

    The character after it, whatever it turns out to be, must not continue it: then it is not
    short.
    """
    for codec in _DROPPED:
        table = _BYTES[codec]
        n = _seq_len(table.get(run[i], 0))
        end = i + n - 1
        if not n or end > len(run) or (end < len(run) and _is_continuation(table, run[end])):
            continue
        if all(_is_continuation(table, c) for c in run[i + 1 : end]) and _candidates(run[i:end]):
            return n - 1
    return 0


def _short_sequences(run: str) -> list[int]:
    """:func:`_short_sequence` at every position of the run (all readings share them)."""
    return [_short_sequence(run, i) if c in _LEADS else 0 for i, c in enumerate(run)]


def _split_gaps(run: str, shorts: list[int], start: int, stop: int) -> list[_Piece]:
    """``run[start:stop]`` (left as it is) with its sequences a byte short marked as gaps."""
    out: list[_Piece] = []
    i = start
    while i < stop:
        length = shorts[i] if i + shorts[i] <= stop else 0
        if not length:
            i += 1
            continue
        if start < i:
            out.append(run[start:i])
        out.append(_Gap(run[i : i + length]))
        i = start = i + length
    if start < stop:
        out.append(run[start:stop])
    return out


def _clean_script(char: str, repaired: bool) -> str | None:
    """Script of ``char`` if it is a letter that cannot be left-over mojibake, else None."""
    if not char.isalpha():
        return None
    if char.isascii():
        return "LATIN"
    return _script(char) if repaired or char not in _SHOWABLE else None


@dataclass(frozen=True, slots=True)
class _Side:
    touching: str | None  # script of a clean letter right next to the gaps
    nearest: str | None  # script of the nearest clean letter on that side


def _sides(pieces: Iterable[_Piece], backwards: bool) -> list[_Side]:
    """For each piece, the clean letters before it (after it, scanning ``backwards``)."""
    sides: list[_Side] = []
    touching = nearest = None
    for piece in pieces:
        sides.append(_Side(touching, nearest))
        if isinstance(piece, _Gap):
            touching = None
            continue
        repaired = isinstance(piece, _Repaired)
        touching = _clean_script(piece[0] if backwards else piece[-1], repaired)
        for char in piece if backwards else reversed(piece):
            script = _clean_script(char, repaired)
            if script:
                nearest = script
                break
    return sides


def _palette(pieces: list[_Piece]) -> set[str]:
    """Scripts of all clean letters in the text."""
    scripts: set[str] = set()
    for piece in pieces:
        if isinstance(piece, _Gap):
            continue
        repaired = isinstance(piece, _Repaired)
        scripts.update(s for s in {_clean_script(c, repaired) for c in set(piece)} if s)
    return scripts


def _systems(scripts: set[str]) -> list[frozenset[str]]:
    systems = [frozenset({s}) for s in scripts]
    systems += [w for w in (_JAPANESE, _KOREAN) if w & scripts]
    return systems


@lru_cache(maxsize=4096)
def _letters(raw: str, system: frozenset[str]) -> frozenset[str]:
    """The candidates of a gap that are letters of ``system`` (or, for the system of no letters,
    the punctuation and symbols)."""
    return frozenset(c for c in _candidates(raw) if _script(c) in system)


def _fitting(gaps: list[_Gap], scripts: set[str]) -> list[set[str]] | None:
    """Per gap, the candidates that fit a writing system all gaps share; None if there is none.

    Consecutive gaps are each other's neighbours: a system qualifies only if it has a letter for
    every gap that can be a letter of some system in question (a letter of the script around
    beats a symbol: の, not the square ㍮). A gap that can be no such letter is punctuation or a
    symbol; the script around does not say which, so it neither blocks the run nor is mended.
    A run with no such letter at all gets no verdict here (the next, wider evidence may).
    """
    systems = _systems(scripts)
    letter_systems = [w for w in systems if w != _NOT_LETTERS]
    lettered = [any(_letters(g.raw, w) for w in letter_systems) for g in gaps]
    if not any(lettered):
        return None  # the scripts in question have nothing to say about this run
    found: list[set[str]] = [set() for _ in gaps]
    qualified = False
    for system in systems:
        per_gap = [_letters(g.raw, system) if lettered[i] else None for i, g in enumerate(gaps)]
        if all(fits is None or fits for fits in per_gap):
            qualified = True
            for acc, fits in zip(found, per_gap, strict=True):
                acc |= fits or set()
    return found if qualified else None


def _known(*scripts: str | None) -> set[str]:
    return {s for s in scripts if s}


@dataclass(frozen=True, slots=True)
class _Context:
    left: _Side
    right: _Side
    palette: Callable[[], set[str]]  # scripts of all clean letters in the text
    damaged_elsewhere: bool  # other mojibake in the text: repairs, or more runs of gaps


def _evidence(gaps: list[_Gap], around: _Context) -> Iterator[set[str]]:
    """Scripts around a run of gaps, from near to far."""
    touching = _known(around.left.touching, around.right.touching)
    yield touching
    if any(len(g.raw) == 1 for g in gaps):
        return  # a lone lead byte (the Å of kÅan) proves little: only mended inside a word
    if touching and not around.damaged_elsewhere:
        return  # "irmã”" beside Japanese is Portuguese, unless the text is visibly damaged
    yield _known(around.left.nearest, around.right.nearest)
    # With no clean letter anywhere, every script a candidate has competes (and so does "no
    # letter": a symbol that lost a byte must not become the one letter among its candidates).
    yield around.palette() or {_script(c) for g in gaps for c in _candidates(g.raw)}


def _resolve(gaps: list[_Gap], around: _Context) -> None:
    """Mend each gap whose candidates hold exactly one character that fits the script around.

    Evidence goes from near to far: clean letters touching the run, the nearest clean letter on
    each side, the scripts of the whole text, and with no clean letter at all, the candidates'
    own scripts. The first level some writing system fits decides, so a Latin word's
    neighbours are never overruled by Japanese elsewhere in the text. Letters the run touches
    are overruled only in a text damaged elsewhere too (Japanese glues particles to Latin
    words: ``Keyとして``).
    """
    for scripts in _evidence(gaps, around):
        fits = _fitting(gaps, scripts) if scripts else None
        if fits is not None:
            for gap, found in zip(gaps, fits, strict=True):
                gap.fixed = next(iter(found)) if len(found) == 1 else None
            return


def _runs_of_gaps(pieces: list[_Piece]) -> list[tuple[int, int]]:
    """``(first, end)`` of each run of consecutive gaps."""
    runs: list[tuple[int, int]] = []
    for i, piece in enumerate(pieces):
        if isinstance(piece, _Gap):
            if runs and runs[-1][1] == i:
                runs[-1] = (runs[-1][0], i + 1)
            else:
                runs.append((i, i + 1))
    return runs


_ROUNDS = 8  # rounds of mending: each one may only use what the last one mended


def _mend_gaps(pieces: list[_Piece]) -> None:
    """Mend gaps until nothing changes, so a second call has nothing left to do.

    A mended character is a clean letter for the gaps around it. Each round therefore sees what
    a fresh call on the result would see; the rounds are capped so hostile text stays linear.
    """
    for _ in range(_ROUNDS):
        view: list[_Piece] = [
            _Repaired(p.fixed) if isinstance(p, _Gap) and p.fixed else p for p in pieces
        ]
        if not _mend_round(view) or not any(isinstance(p, _Gap) and not p.fixed for p in pieces):
            return


def _mend_round(pieces: list[_Piece]) -> bool:
    """One round over the runs of gaps still open; True if it mended any."""
    lefts = _sides(pieces, backwards=False)
    rights = _sides(reversed(pieces), backwards=True)[::-1]
    palette_memo: list[set[str]] = []

    def palette() -> set[str]:
        if not palette_memo:
            palette_memo.append(_palette(pieces))
        return palette_memo[0]

    runs = _runs_of_gaps(pieces)
    elsewhere = len(runs) > 1 or any(isinstance(p, _Repaired) for p in pieces)
    for first, end in runs:
        gaps = [p for p in pieces[first:end] if isinstance(p, _Gap)]  # all of them
        _resolve(gaps, _Context(lefts[first], rights[end - 1], palette, elsewhere))
    return any(isinstance(p, _Gap) and p.fixed for p in pieces)


def repair_mojibake(text: str) -> str:
    """Return ``text`` with every exactly reversible mojibake sequence repaired."""
    if text.isascii():
        return text
    pieces: list[_Piece] = []
    pos = 0
    for match in _NON_ASCII_RUN.finditer(text):
        if pos < match.start():
            pieces.append(text[pos : match.start()])
        pieces.extend(_fix_run(match))
        pos = match.end()
    if pos < len(text):
        pieces.append(text[pos:])
    if any(isinstance(p, _Gap) for p in pieces):
        _mend_gaps(pieces)
    return "".join(p if isinstance(p, str) else (p.fixed or p.raw) for p in pieces)


def squash_ws(text: str) -> str:
    """Collapse whitespace runs (line wrapping leaves double spaces in titles)."""
    return _WS.sub(" ", text).strip()


class DecodeError(ValueError):
    """The bytes are not text in any encoding we accept."""


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
LEGACY_ENCODING = "cp1252"


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Decode a digest file: BOM first, then UTF-8, then the legacy single-byte charset.

    Returns ``(text, encoding)``. Raises :class:`DecodeError` for empty or binary input so the
    caller can report the file once instead of parsing garbage.
    """
    if not data.strip():
        raise DecodeError("file is empty")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise DecodeError(f"invalid {encoding} after its byte-order mark: {exc}") from exc
    try:
        text, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = data.decode(LEGACY_ENCODING, errors="replace"), LEGACY_ENCODING
    # A stray NUL or control character is damage the parser reports by line; binary data (an
    # image, random bytes, a file of NULs) is full of them.
    head = text[:4096]
    controls = len(_CONTROLS.findall(head))
    if controls > max(2, len(head) // 100) or text.count("\ufffd") > len(text) * 0.01:
        raise DecodeError("binary data, not a text digest")
    return text, encoding


SURROGATE = re.compile("[\ud800-\udfff]")


def replace_surrogates(text: str) -> str:
    """Valid Unicode: lone surrogates (JSON's ``\\ud800``-style escapes, undecodable bytes of a
    file name) become U+FFFD. No UTF-8 writer takes them, and the text around them is sound:
    they come from text cut in the middle of an emoji."""
    return SURROGATE.sub("\ufffd", text) if SURROGATE.search(text) else text


def join_surrogates(text: str) -> tuple[str, int]:
    """Valid Unicode from a reader that decodes ``\\ud83d\\ude00`` escapes one at a time (PyYAML
    without libyaml): each surrogate pair becomes the character it encodes and a lone surrogate
    U+FFFD; and how many became U+FFFD."""
    if not SURROGATE.search(text):
        return text, 0
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return joined, joined.count("\ufffd") - text.count("\ufffd")


def shorten(text: str, limit: int = 200) -> str:
    """One line of at most ``limit`` characters, for messages and error fields."""
    text = " ".join(replace_surrogates(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def utc_ms(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC: the one text of every stored time (milliseconds, so
    two observations never share one; years below 1000 padded, unlike ``strftime``)."""
    moment = moment.astimezone(UTC)
    date = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
    time = f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    return f"{date}T{time}.{moment.microsecond // 1000:03d}Z"


def refuse_constant(name: str) -> Any:
    """``json.loads(parse_constant=...)``: NaN and Infinity are not JSON, and no table holds
    them, so an answer carrying one is refused."""
    raise ValueError(f"{name} is not JSON")
