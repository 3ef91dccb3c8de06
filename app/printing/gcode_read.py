"""Reading G-code text without Python per line: lines, words and numbers as numpy arrays.

A sliced print is millions of lines of a few plain forms (``G1 X71.091 Y26.98 E3.11451``,
``G92 E0``, ``M107``, comments). :func:`read_lines` finds lines and words with one byte
comparison per chunk of the text, parses the numbers of ``G0``/``G1``/``G92`` words eight digits
at a time (SWAR: a uint64 holds eight ASCII digits, three multiplications give their value), and
hands every line that is not in one of those plain forms, byte for byte, to the caller's
line-by-line reader. Its values are exactly ``float(word[1:])``: the digits form an integer
below 2**53 that is divided once by an exact power of ten (a correctly rounded division).

A line is read here only when it is
- a word line: ``G0``/``G1``/``G92``, one space-separated word per axis (``X Y Z E F``; no ``F``
  on ``G92``, at least one word), each ``-?digits[.digits]`` with at most 8 digits before and
  8 after the point and 15 in all, no axis twice;
- a no-op: a first word ``[GMT]digits`` that changes nothing the analysis follows (not ``G0 G1
  G4 G28 G90 G91 G92 M82 M83 M204``) on a line without ``;``;
- blank, or a ``;`` comment other than ``;TYPE:``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from app.progress import CancelToken, Progress, check_cancel

OP_G0, OP_G1, OP_SET = 0, 1, 2
"""Operations of word lines: a rapid move, a move, a set position (``G92``)."""

AXES = "XYZEF"
_CHUNK = 1 << 18  # bytes per pass: the chunk's temporaries stay in the CPU cache
_U = np.uint64
_ZEROS = _U(0x3030303030303030)  # eight ASCII "0"
_ALL = _U(0xFFFFFFFFFFFFFFFF)
_POW10 = 10.0 ** np.arange(9)
_POW10_INT = 10 ** np.arange(9, dtype=np.uint64)
_LETTER = np.full(256, 255, np.uint8)
for _code, _char in enumerate(AXES):
    _LETTER[ord(_char)] = _code
# bytes that end a line for str.splitlines() besides "\n" (and "\r" not before "\n")
_IRREGULAR = (11, 12, 28, 29, 30)
_UNICODE_BREAKS = (b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xa9")


def _key(word: str) -> int:
    """A word of up to 8 ASCII bytes as the little-endian integer :attr:`Text.at8` gives."""
    return int.from_bytes(word.encode("ascii"), "little")


_G0, _G1, _G92 = _key("G0"), _key("G1"), _key("G92")
_EFFECTFUL = np.array(
    [_key(w) for w in ("G0", "G1", "G4", "G28", "G90", "G91", "G92", "M82", "M83", "M204")],
    dtype=np.uint64,
)
_TYPE_KEY = _key(";TYPE:")


@dataclass
class Lines:
    """What one chunk of text holds, lines numbered from 0 over the whole text.

    ``line``/``op``/``values`` are the word lines (``values`` (5, n) float64, rows X Y Z E F,
    NaN where a word is absent); ``noop`` counts the valid no-op lines; ``slow``,
    ``slow_start``/``slow_end`` are the line numbers and byte ranges of the rest.
    """

    line: np.ndarray
    op: np.ndarray
    values: np.ndarray
    noop: int
    slow: np.ndarray
    slow_start: np.ndarray
    slow_end: np.ndarray


class Text:
    """G-code bytes laid out for :func:`read_lines`: line breaks made plain, padded, uint64 view."""

    def __init__(self, data: bytes) -> None:
        if _irregular_breaks(data):
            text = data.decode("utf-8", errors="replace")
            data = "\n".join(text.splitlines()).encode("utf-8", errors="surrogatepass")
        if not data.endswith(b"\n"):
            data += b"\n"
        self.size = len(data)
        padded = np.zeros(-(-(len(data) + 16) // 8) * 8, np.uint8)
        padded[: len(data)] = np.frombuffer(data, np.uint8)
        self.bytes = padded
        # at8[i]: bytes i..i+7 as a little-endian uint64, an unaligned view: one gather reads
        # a word's bytes (a quarter of the CPU of two aligned reads and their shifts)
        self.at8 = np.ndarray((len(padded) - 7,), "<u8", padded, strides=(1,))
        self.data = data

    def line_text(self, start: int, end: int) -> str:
        """One line as the text reader sees it (``\\r\\n`` endings stripped)."""
        raw = self.data[start:end]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        return raw.decode("utf-8", errors="replace")


def _irregular_breaks(data: bytes) -> bool:
    """Whether ``data`` has line breaks other than ``\\n`` and ``\\r\\n`` (str.splitlines' set)."""
    if any(bytes((b,)) in data for b in _IRREGULAR):
        return True
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return True
    return not data.isascii() and any(b in data for b in _UNICODE_BREAKS)


def read_lines(
    text: Text, progress: Progress, cancel: CancelToken | None = None
) -> Iterator[Lines]:
    """The :class:`Lines` of ``text``, chunk by chunk (cancel and progress between chunks)."""
    start = first_line = 0
    while start < text.size:
        check_cancel(cancel)
        progress.update(start / text.size, "reading G-code")
        end = text.size
        if start + _CHUNK < end:
            end = (
                text.data.rfind(b"\n", start, start + _CHUNK) + 1
                or text.data.index(b"\n", start + _CHUNK) + 1
            )
        chunk = _read_chunk(text, start, end, first_line)
        first_line += chunk.lines
        yield chunk.result
        start = end


@dataclass
class _Chunk:
    result: Lines
    lines: int


@dataclass
class _Tokens:
    """The words of one chunk: byte ``start`` of the text on; each word ends at a byte <= 32."""

    text: Text
    start: int
    buf: np.ndarray  # the chunk's bytes
    sep: np.ndarray  # offsets of the bytes ending words
    sep_byte: np.ndarray  # those bytes
    newline: np.ndarray  # which of those end a line
    word_start: np.ndarray
    word_len: np.ndarray
    first: np.ndarray  # the word is the first of its line
    word_line: np.ndarray  # line (in the chunk) of each word

    @classmethod
    def of(cls, text: Text, start: int, end: int) -> _Tokens:
        buf = text.bytes[start:end]
        sep = np.flatnonzero(buf <= 32)
        sep_byte = buf[sep]
        newline = sep_byte == 10
        word_start = np.empty_like(sep)
        word_start[0] = 0
        word_start[1:] = sep[:-1] + 1
        first = np.empty(len(sep), bool)
        first[0] = True
        first[1:] = newline[:-1]
        line = np.cumsum(first) - 1
        return cls(
            text, start, buf, sep, sep_byte, newline, word_start, sep - word_start, first, line
        )

    def odd_lines(self, n_lines: int) -> np.ndarray:
        """Lines with a tab or control byte (other than the "\r" of "\r\n")."""
        lines = np.zeros(n_lines, bool)
        byte = self.sep_byte
        odd = (byte != 32) & ~self.newline
        if not odd.any():  # only spaces and newlines: the common case
            return lines
        after = self.buf[np.minimum(self.sep + 1, len(self.buf) - 1)]
        odd &= ~((byte == 13) & (after == 10))
        lines[self.word_line[odd]] = True
        return lines


def _read_chunk(text: Text, start: int, end: int, first_line: int) -> _Chunk:
    """Lines ``first_line...`` in bytes ``start:end`` (which end with a newline)."""
    tok = _Tokens.of(text, start, end)
    heads = np.flatnonzero(tok.first)  # gathers at these touch a third of the words
    line_start = tok.word_start[heads]
    line_end = tok.sep[tok.newline]
    slow = tok.odd_lines(len(line_start))  # tabs, control bytes: the text reader decides
    head_len = tok.word_len[heads]
    ends_line = tok.newline[heads]  # the first word is the whole line
    head = text.at8[start + line_start]
    key = head & _low_bytes(np.minimum(head_len, 8))
    comment = tok.buf[line_start] == ord(";")
    typed = (head & _U(0xFFFFFFFFFFFF)) == _TYPE_KEY  # the first six bytes
    skip = (comment & ~typed) | ((head_len == 0) & ends_line)
    g01 = ((key == _G0) | (key == _G1)) & (head_len == 2)
    g92 = (key == _G92) & (head_len == 3)
    noop = _is_noop(tok, line_start, head_len, key) & ~slow & ~skip
    words = _parse_words(tok, (g01 | g92) & ~ends_line & ~slow, g92)
    slow |= ~(skip | noop | words.ok)

    op = np.where(key[words.lines] == _G0, OP_G0, OP_G1)
    op[g92[words.lines]] = OP_SET
    slow_lines = np.flatnonzero(slow)
    result = Lines(
        line=words.lines + first_line,
        op=op.astype(np.int8),
        values=words.values,
        noop=int(np.count_nonzero(noop)),
        slow=slow_lines + first_line,
        slow_start=line_start[slow_lines] + start,
        slow_end=line_end[slow_lines] + start,
    )
    return _Chunk(result, len(line_start))


def _is_noop(
    tok: _Tokens, line_start: np.ndarray, head_len: np.ndarray, key: np.ndarray
) -> np.ndarray:
    """Lines whose first word is ``[GMT]digits`` with no effect, and that have no ``;``."""
    letter = tok.buf[line_start]
    code = (letter == ord("G")) | (letter == ord("M")) | (letter == ord("T"))
    code &= (head_len >= 2) & (head_len <= 8)
    for effect in _EFFECTFUL:
        code &= key != effect
    lines = np.flatnonzero(code)
    digits = tok.text.at8[tok.start + line_start[lines] + 1]
    code[lines] = _all_digits(_right_align(digits, head_len[lines] - 1))
    semicolons = np.flatnonzero(tok.buf == ord(";"))
    code[np.searchsorted(line_start, semicolons, side="right") - 1] = False
    return code


@dataclass
class _Words:
    ok: np.ndarray  # per line of the chunk: a word line whose words are all in the plain form
    lines: np.ndarray  # those lines (chunk line numbers), sorted
    values: np.ndarray  # (5, len(lines)) float64 X Y Z E F, NaN where absent


def _parse_words(tok: _Tokens, candidates: np.ndarray, g92: np.ndarray) -> _Words:
    """Parse the axis words of the ``candidates`` lines; the lines with any odd word drop out."""
    pick = np.flatnonzero(candidates[tok.word_line] & ~tok.first & (tok.word_len > 0))
    line = tok.word_line[pick]
    word_start = tok.word_start[pick]
    axis = _LETTER[tok.buf[word_start]]
    at = tok.start + word_start + 1
    value, good = parse_numbers(tok.text, at, tok.word_len[pick] - 1)
    good &= (axis < 4) | ((axis == 4) & ~g92[line])
    ok = candidates.copy()
    ok[line[~good]] = False
    count = np.bincount(line, minlength=len(ok))
    bits = np.bincount(line, weights=np.left_shift(1, axis & 7), minlength=len(ok))
    ok &= np.bitwise_count(bits.astype(np.int64)) == count  # a repeated axis carries a bit
    ok &= (count > 0) | ~g92  # a bare G92 zeroes every axis: the text reader does that
    lines = np.flatnonzero(ok)
    values = np.full((len(AXES), len(lines)), np.nan)
    keep = ok[line]
    if not keep.all():  # most chunks have no odd word line
        line, axis, value = line[keep], axis[keep], value[keep]
    row = (np.cumsum(ok) - 1)[line]
    values.reshape(-1)[axis.astype(np.int64) * len(lines) + row] = value
    return _Words(ok, lines, values)


def parse_numbers(text: Text, at: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values of the numbers at byte offsets ``at`` of ``length`` bytes, and which are plain.

    Plain is ``-?digits[.digits]`` with 1 to 15 digits, at most 7 before the point and 8 after
    it; for those the value equals Python's ``float``. Sliced G-code's numbers nearly all fit
    in 8 bytes, which one load and one digit conversion parse; longer ones take two of each.
    """
    negative = text.bytes[at] == ord("-")
    at = at + negative
    length = length - negative
    long = np.flatnonzero(length > 8)
    if len(long):
        value, ok = _parse_short(text, at, np.minimum(length, 8))
        value[long], ok[long] = _parse_long(text, at[long], length[long])
    else:
        value, ok = _parse_short(text, at, length)
    np.negative(value, out=value, where=negative)
    return value, ok


def _parse_short(text: Text, at: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`parse_numbers` of unsigned numbers of at most 8 bytes: the point is cut out of
    the loaded bytes, so the digits on both sides form one integer."""
    x = text.at8[at] & _low_bytes(length)
    int_len = np.minimum(_first_byte(x ^ _U(0x2E2E2E2E2E2E2E2E)), length)  # up to the "."
    before = _low_bytes(int_len)
    digits = (x & before) | ((x >> _U(8)) & ~before)
    has_point = int_len < length
    count = length - has_point
    digits = _right_align(digits, count)
    ok = (count >= 1) & (int_len <= 7) & _all_digits(digits)
    frac_len = count - int_len
    value = _eight_digits(digits).astype(np.float64) / _POW10[frac_len]  # exact / exact
    return value, ok


def _parse_long(text: Text, at: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`parse_numbers` of unsigned numbers of any length: 16 bytes, digits on either side
    of the point converted apart."""
    low, high = text.at8[at], text.at8[at + 8]
    int_len = np.minimum(_first_byte(low ^ _U(0x2E2E2E2E2E2E2E2E)), length)  # up to the "."
    frac_len = length - int_len - 1  # -1 without a point
    ok = (int_len <= 7) & (frac_len <= 8) & ((int_len >= 1) | (frac_len >= 1))
    frac_len = np.clip(frac_len, 0, 8)
    skip = (int_len.astype(_U) + _U(1)) << _U(3)  # bits up to the first fraction digit
    frac = (low >> skip) | (high << (_U(64) - skip))
    whole = _right_align(low, int_len)
    frac = _right_align(frac, frac_len)
    ok &= _all_digits(whole) & _all_digits(frac)
    mantissa = _eight_digits(whole) * _POW10_INT[frac_len] + _eight_digits(frac)
    return mantissa.astype(np.float64) / _POW10[frac_len], ok  # exact / exact


def _low_bytes(count: np.ndarray) -> np.ndarray:
    """Masks of the lowest ``count`` (0..8) bytes."""
    return _ALL >> ((_U(8) - count.astype(_U)) << _U(3))


def _right_align(x: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The first ``count`` (0..8) bytes of ``x`` moved to its end, led by ASCII zeros."""
    bits = count.astype(_U) << _U(3)
    return (x << (_U(64) - bits)) | (_ZEROS >> bits)


def _all_digits(x: np.ndarray) -> np.ndarray:
    """Whether all 8 bytes are ASCII digits."""
    high = _U(0xF0F0F0F0F0F0F0F0)
    return ((x & high) == _ZEROS) & (((x + _U(0x0606060606060606)) & high) == _ZEROS)


def _eight_digits(x: np.ndarray) -> np.ndarray:
    """The value of 8 ASCII digits (most significant in the lowest byte)."""
    x = ((x & _U(0x0F0F0F0F0F0F0F0F)) * _U(2561)) >> _U(8)
    x = ((x & _U(0x00FF00FF00FF00FF)) * _U(6553601)) >> _U(16)
    return ((x & _U(0x0000FFFF0000FFFF)) * _U(42949672960001)) >> _U(32)


def _first_byte(x: np.ndarray) -> np.ndarray:
    """Index (0..8) of the lowest zero byte of ``x``; 8 when none is."""
    found = (x - _U(0x0101010101010101)) & ~x & _U(0x8080808080808080)
    lowest = found & (~found + _U(1))
    return (np.bitwise_count(lowest - _U(1)) >> 3).astype(np.int64)
