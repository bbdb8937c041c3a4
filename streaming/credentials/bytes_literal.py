"""The text of a Python bytes literal (`b'...'`, as `repr(bytes)` writes it) back to its bytes, without eval.

Pure and bounded: one pass over at most `max_chars` characters, no recursion, no interpreter. The accepted
grammar is a single-quoted bytes literal: prefix `b` or `B`, one `'` or `"` on each side, ASCII only, no line
break, and Python's escapes: `\\\\`, `\\'`, `\\"`, `\\a`, `\\b`, `\\f`, `\\n`, `\\r`, `\\t`, `\\v`, `\\xHH` (exactly
two hex digits), `\\ooo` (one to three octal digits, at most `\\377`) and a backslash before a line break (a
continuation: nothing). As in Python, a backslash before any other character stays in the bytes with it. Raw
(`rb'...'`) and triple-quoted literals are refused: readers write what `repr()` writes.

Error messages say what is wrong and where (a character position), never which characters: the text is a
credential.
"""

from __future__ import annotations

from typing import Final

_SIMPLE_ESCAPES: Final[dict[str, int]] = {
    "\\": 0x5C,
    "'": 0x27,
    '"': 0x22,
    "a": 0x07,
    "b": 0x08,
    "f": 0x0C,
    "n": 0x0A,
    "r": 0x0D,
    "t": 0x09,
    "v": 0x0B,
}
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")
_OCTAL_DIGITS: Final = frozenset("01234567")
_LINE_BREAKS: Final = frozenset("\n\r")
_EXPECTED: Final = "expected a Python bytes literal such as b'...' or b\"...\""


class BytesLiteralError(ValueError):
    """The text is not a bytes literal this parser reads; the message never quotes the text."""


def parse_bytes_literal(text: str, max_chars: int) -> bytes:
    """The bytes a bytes literal denotes; BytesLiteralError (content-free message) when it is not one."""
    if len(text) > max_chars:
        raise BytesLiteralError(f"is {len(text)} characters long; at most {max_chars}")
    if not text.isascii():
        position = next(i for i, c in enumerate(text) if not c.isascii())
        raise BytesLiteralError(f"holds a non-ASCII character at position {position}; a bytes literal is ASCII")
    if len(text) < 2 or text[0] not in "bB" or text[1] not in "'\"":
        if text[:1] in ("r", "R") or text[1:2] in ("r", "R"):
            raise BytesLiteralError(f"is a raw literal, which readers do not send; {_EXPECTED}")
        raise BytesLiteralError(f"does not start with b' or b\"; {_EXPECTED}")
    quote = text[1]
    if text.startswith(quote * 3, 1):
        raise BytesLiteralError(f"is triple-quoted, which readers do not send; {_EXPECTED}")
    end = len(text)
    body = text[2:-1]
    plain = "\\" not in body and quote not in body and "\n" not in body and "\r" not in body
    if end >= 3 and text[-1] == quote and plain:
        return body.encode("ascii")  # the common case: text without escapes
    out = bytearray()
    i = 2
    while i < end:
        c = text[i]
        if c == quote:
            if i != end - 1:
                raise BytesLiteralError(f"has text after its closing quote (position {i + 1}); {_EXPECTED}")
            return bytes(out)
        if c in _LINE_BREAKS:
            raise BytesLiteralError(f"holds a line break at position {i}; write it as \\n or \\r")
        if c != "\\":
            out.append(ord(c))
            i += 1
            continue
        i = _escape(text, i, out)
    raise BytesLiteralError(f"is not closed by its quote; {_EXPECTED}")


def _escape(text: str, i: int, out: bytearray) -> int:
    """Append what the escape at `i` (a backslash) denotes; the position after it."""
    if i + 1 >= len(text):
        raise BytesLiteralError(f"ends inside an escape at position {i}")
    e = text[i + 1]
    simple = _SIMPLE_ESCAPES.get(e)
    if simple is not None:
        out.append(simple)
        return i + 2
    if e == "\n":
        return i + 2
    if e == "\r":
        # A continuation over a CRLF or CR line break.
        return i + 3 if text.startswith("\n", i + 2) else i + 2
    if e == "x":
        digits = text[i + 2 : i + 4]
        if len(digits) != 2 or not set(digits) <= _HEX_DIGITS:
            raise BytesLiteralError(f"has an invalid \\x escape at position {i}: expected two hex digits")
        out.append(int(digits, 16))
        return i + 4
    if e in _OCTAL_DIGITS:
        j = i + 1
        while j < i + 4 and j < len(text) and text[j] in _OCTAL_DIGITS:
            j += 1
        value = int(text[i + 1 : j], 8)
        if value > 0o377:
            raise BytesLiteralError(f"has an octal escape above \\377 at position {i}")
        out.append(value)
        return j
    # Python keeps an unknown escape as it is (with a warning): the backslash and the character.
    out.append(0x5C)
    return i + 1
