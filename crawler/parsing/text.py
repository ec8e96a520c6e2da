"""Byte decoding and mojibake repair for digest text.

The digests were sometimes decoded as Windows-1252 or Mac Roman and saved again as UTF-8. Each
damaged character is then a run of 2-4 characters of that single-byte charset whose bytes form one
valid UTF-8 sequence, so it can be undone exactly by re-encoding. Where a byte was dropped on the
way (cp1252 has five undefined bytes), the sequence no longer decodes and is left as it is: we only
ever replace a run by what it provably was. ftfy's whole-string heuristics were tried first and
missed the Mac Roman damage in the samples (e.g. ``Doll√°r``, emoji), and partially "fixed" runs
with dropped bytes; ftfy's badness check still guards the rare ambiguous case (see below).
"""

from __future__ import annotations

import codecs
import re
import unicodedata

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


def _seq_len(lead: int) -> int:
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


def _repair_run(run: str, codec: str) -> tuple[str, int]:
    """Undo ``codec`` mojibake inside one run of non-ASCII characters.

    Returns the new run and how many characters were consumed by repairs. Characters the codec
    cannot produce, or bytes that do not form a complete UTF-8 sequence, stay untouched.
    """
    table = _BYTES[codec]
    out: list[str] = []
    repaired = 0
    i = 0
    while i < len(run):
        lead = table.get(run[i])
        n = _seq_len(lead) if lead is not None else 0
        if n and i + n <= len(run):
            chunk = [table.get(c) for c in run[i : i + n]]
            if None not in chunk:
                try:
                    char = bytes(chunk).decode("utf-8")  # type: ignore[arg-type]
                except UnicodeDecodeError:
                    char = ""
                # A control or unassigned code point is not what anyone wrote.
                if char and unicodedata.category(char) not in ("Cc", "Cs", "Co", "Cn"):
                    out.append(char)
                    repaired += n
                    i += n
                    continue
        out.append(run[i])
        i += 1
    return "".join(out), repaired


def _fix_run(match: re.Match[str]) -> str:
    run = match.group(0)
    best, best_count = run, 0
    for codec, table in _BYTES.items():
        # Mojibake of one charset consists only of that charset's characters; a charset that
        # cannot produce the whole run would only find accidental sequences in it.
        if not all(c in table for c in run):
            continue
        fixed, count = _repair_run(run, codec)
        if count > best_count:
            best, best_count = fixed, count
    if best_count == 2 and len(run) == 2 and not _plausible_pair(match, best):
        return run
    return best


def _plausible_pair(match: re.Match[str], fixed: str) -> bool:
    """Accept a lone two-character repair only where it is clearly mojibake.

    Two characters can decode by accident ("Ñ”" would become a Cyrillic letter). We accept them
    when ftfy's badness heuristic flags the original, or when the result is a Latin letter inside
    a Latin word (``Doll√°r`` -> ``Dollár``), which ftfy does not flag on its own.
    """
    if is_bad(match.group(0)):
        return True
    text, start, end = match.string, match.start(), match.end()
    before = text[start - 1] if start else ""
    after = text[end] if end < len(text) else ""
    return (
        fixed.isalpha()
        and unicodedata.name(fixed, "").startswith("LATIN")
        and ((before.isascii() and before.isalpha()) or (after.isascii() and after.isalpha()))
    )


def repair_mojibake(text: str) -> str:
    """Return ``text`` with every exactly reversible mojibake sequence repaired."""
    if text.isascii():
        return text
    return _NON_ASCII_RUN.sub(_fix_run, text)


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
