"""Hex text of RS-485 frames as controllers publish it in `data` (docs/domain.md, "Payloads").

Pure: text in, bytes or a DecodeError('bad-hex') saying where the text is wrong out.

The rule is the reference deployment's, whose processor removed every space before decoding: byte pairs in
upper or lower case, with any ASCII whitespace (space, tab, CR, LF, VT, FF) between or around them, in
any amount. A byte's two digits stay together: whitespace between them is refused, since which digits
belong together would then be a guess.
"""

from __future__ import annotations

from typing import Final

from streaming.errors import DecodeError

_HEX_DIGITS: Final[frozenset[str]] = frozenset("0123456789abcdefABCDEF")
# Exactly what bytes.fromhex skips between bytes: the fast path and the diagnosis agree on it.
_WHITESPACE: Final[frozenset[str]] = frozenset(" \t\n\r\v\f")
_EXPECTED: Final = "expected hex byte pairs, optionally separated by spaces, tabs or line breaks"
# Characters of context shown on each side of the position a detail points at.
_CONTEXT: Final = 12


def parse_hex(text: str) -> bytes:
    """Bytes of a hex frame: pairs of hex digits in any case, any ASCII whitespace between or around them."""
    try:
        frame = bytes.fromhex(text)
    except ValueError:
        raise DecodeError("bad-hex", _diagnose_hex(text)) from None
    if not frame:
        raise DecodeError("bad-hex", _diagnose_hex(text))
    return frame


def format_hex(frame: bytes) -> str:
    """'AA BB CC': the form controllers publish in `data`."""
    return frame.hex(" ").upper()


def _diagnose_hex(text: str) -> str:
    """Why `text` is not a hex frame, pointing at the first offending position and its surroundings."""
    if not text:
        return f"hex data is empty; {_EXPECTED}"
    length = len(text)
    index = 0
    while index < length:
        char = text[index]
        if char in _WHITESPACE:
            index += 1
            continue
        if char not in _HEX_DIGITS:
            return _bad_character(text, index)
        partner = index + 1
        if partner < length and text[partner] in _HEX_DIGITS:
            index += 2
            continue
        if partner < length and text[partner] not in _WHITESPACE:
            return _bad_character(text, partner)
        following = partner
        while following < length and text[following] in _WHITESPACE:
            following += 1
        if following < length and text[following] in _HEX_DIGITS:
            return (
                f"whitespace at position {partner} splits a byte between the digits at positions {index} and "
                f"{following} (a byte's two digits must be adjacent): {_context(text, partner)}; {_EXPECTED}"
            )
        if following < length:
            return _bad_character(text, following)
        digits = sum(1 for c in text if c in _HEX_DIGITS)
        return (
            f"odd number of hex digits ({digits}): the digit at position {index} has no partner: "
            f"{_context(text, index)}; {_EXPECTED}"
        )
    return f"hex data holds only whitespace, no byte; {_EXPECTED}"


def _bad_character(text: str, index: int) -> str:
    char = text[index]
    name = repr(char) if char.isascii() else f"{char!r} (U+{ord(char):04X})"
    hint = " (only spaces, tabs, CR, LF, VT and FF may separate bytes)" if char.isspace() else ""
    return (
        f"character {name} at position {index} is neither a hex digit nor whitespace{hint}: "
        f"{_context(text, index)}; {_EXPECTED}"
    )


def _context(text: str, index: int) -> str:
    """The text around `index`, the character there in brackets, as a one-line literal."""
    start, end = max(0, index - _CONTEXT), min(len(text), index + 1 + _CONTEXT)
    shown = f"{text[start:index]}[{text[index]}]{text[index + 1 : end]}"
    return ("..." if start else "") + repr(shown) + ("..." if end < len(text) else "")
