"""Hex text of RS-485 frames as controllers publish it in `data` (docs/domain.md, "Payloads").

Pure: text in, bytes or a DecodeError('bad-hex') saying where the text is wrong out.
"""

from __future__ import annotations

from typing import Final

from streaming.errors import DecodeError

_HEX_DIGITS: Final[frozenset[str]] = frozenset("0123456789abcdefABCDEF")


def parse_hex(text: str) -> bytes:
    """Bytes of a hex frame: upper or lower case, either no spaces or one space between every two bytes."""
    try:
        frame = bytes.fromhex(text)
    except ValueError:
        raise DecodeError("bad-hex", _diagnose_hex(text)) from None
    # fromhex also skips tabs, newlines and spaces anywhere between bytes: the length and, for the spaced
    # form, a space at every third position enforce "nothing, or exactly one space, between every two bytes".
    n = len(frame)
    if n and (len(text) == 2 * n or (len(text) == 3 * n - 1 and text[2::3] == " " * (n - 1))):
        return frame
    raise DecodeError("bad-hex", _diagnose_hex(text))


def format_hex(frame: bytes) -> str:
    """'AA BB CC': the form controllers publish in `data`."""
    return frame.hex(" ").upper()


def _diagnose_hex(text: str) -> str:
    expected = "expected hex byte pairs, either unseparated or separated by single spaces"
    if not text:
        return f"hex data is empty; {expected}"
    for index, char in enumerate(text):
        if char != " " and char not in _HEX_DIGITS:
            return f"character {char!r} at position {index} is not a hex digit; {expected}"
    if text[0] == " " or text[-1] == " ":
        return f"hex data starts or ends with a space; {expected}"
    double = text.find("  ")
    if double >= 0:
        return f"double space at position {double}; {expected}"
    digits = len(text) - text.count(" ")
    if digits % 2:
        return f"odd number of hex digits ({digits}); {expected}"
    return f"spaces do not fall between whole bytes; {expected}"
