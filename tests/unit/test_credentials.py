"""Reader credentials at the bridge (streaming/credentials): the bytes-literal parser, the keys and their
fingerprints, the canonical credential-free payload, the settings, and the broad reader-topic rule.

Expected fingerprints come from RFC 4231's published HMAC-SHA-256 vectors, or from the standard library's
hmac computed here on the token the test wrote by hand; expected bytes from Python's own repr() and
ast.literal_eval, never from the code under test.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import os
import random
import subprocess
import sys
import warnings

import pytest

from streaming.credentials.bytes_literal import BytesLiteralError, parse_bytes_literal
from streaming.credentials.keys import CredentialKey, CredentialKeyError, make_key, parse_previous_keys
from streaming.credentials.redaction import (
    MAX_LITERAL_CHARS,
    MAX_PAYLOAD_BYTES,
    MAX_TOKEN_BYTES,
    redact_credentials,
)
from streaming.mqtt.topic import is_reader
from streaming.settings import CredentialSettings

SECRET = "s3cret-for-the-unit-tests-only"
KEY = CredentialKey("k1", SECRET.encode())
TS = "2026-03-01 10:00:00.000000"
# A token nobody would write by accident: each test checks it is nowhere in what the bridge would forward.
CARD = "CARD-7f3a9c-SECRET"


def expected_fp(token: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), token, hashlib.sha256).hexdigest()


def reader_payload(data: object, **extra: object) -> bytes:
    return json.dumps({"timestamp": TS, "data": data, **extra}).encode()


# ------------------------------------------------------------------------------------------ fingerprints


def test_fingerprint_is_hmac_sha256_rfc4231_vectors() -> None:
    # RFC 4231, test cases 1 and 2 (HMAC-SHA-256).
    case1 = CredentialKey("t1", b"\x0b" * 20).fingerprint(b"Hi There")
    assert case1 == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    case2 = CredentialKey("t2", b"Jefe").fingerprint(b"what do ya want for nothing?")
    assert case2 == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_a_key_never_shows_its_secret() -> None:
    assert SECRET not in repr(KEY)


# ---------------------------------------------------------------------------------------- bytes literals


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("b'\"Hello World\"'", b'"Hello World"'),  # docs/domain.md's example
        ("b''", b""),
        ('b""', b""),
        ("B'abc'", b"abc"),
        ('b"it\'s"', b"it's"),
        ("b'it\\'s'", b"it's"),
        ('b"say \\"hi\\""', b'say "hi"'),
        ("b'back\\\\slash'", b"back\\slash"),
        ("b'\\n\\r\\t\\0'", b"\n\r\t\x00"),
        ("b'\\a\\b\\f\\v'", b"\x07\x08\x0c\x0b"),
        ("b'\\x02\\x02\\x01\\x00\\x00\\x00\\x03\\x03'", bytes([2, 2, 1, 0, 0, 0, 3, 3])),
        ("b'\\xFf\\xfF'", b"\xff\xff"),
        ("b'\\101\\1\\12\\0123'", b"A\x01\n\n3"),  # one to three octal digits
        ("b'\\377'", b"\xff"),
        ("b'\\q\\N{x}\\u0041'", b"\\q\\N{x}\\u0041"),  # unknown escapes keep their backslash, as in Python
        ("b'a\\\nb'", b"ab"),  # a backslash before a line break continues the line
        ("b'\\xc3\\xa9'", "é".encode()),
    ],
)
def test_bytes_literals(text: str, expected: bytes) -> None:
    assert parse_bytes_literal(text, MAX_LITERAL_CHARS) == expected
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Python warns about the unknown escapes the platform accepts
        assert ast.literal_eval(text) == expected, "the test's expectation is not Python's"


def test_every_byte_round_trips_through_repr() -> None:
    every = bytes(range(256))
    assert parse_bytes_literal(repr(every), MAX_LITERAL_CHARS) == every
    rng = random.Random(17)
    for _ in range(2000):
        token = rng.randbytes(rng.randrange(0, 40))
        assert parse_bytes_literal(repr(token), MAX_LITERAL_CHARS) == token


def test_agrees_with_python_on_random_literals() -> None:
    """Differential: whatever the parser accepts, Python reads as the same bytes; whatever Python reads as a
    single-quoted b'...' literal, the parser accepts (octal escapes above \\377 aside, deprecated in Python)."""
    rng = random.Random(4231)
    alphabet = ["a", "Z", "0", "7", "8", "x", "n", "'", '"', "\\", "\\x", "\\x4", "\\x4f", "\\7", "\\477", " ", "\n"]
    checked = 0
    for _ in range(20000):
        quote = rng.choice("'\"")
        text = rng.choice("bB") + quote + "".join(rng.choices(alphabet, k=rng.randrange(0, 8))) + quote
        try:
            mine: bytes | None = parse_bytes_literal(text, MAX_LITERAL_CHARS)
        except BytesLiteralError:
            mine = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = ast.literal_eval(text)
        except (SyntaxError, ValueError):
            theirs = None
        if mine is not None:
            assert theirs == mine, text
            checked += 1
        elif isinstance(theirs, bytes) and not text.startswith(quote * 3, 1):
            octal_above_377 = any(f"\\{d}" in text for d in "4567")
            assert octal_above_377, f"Python reads {text!r} but the parser refused it"
    assert checked > 1000


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "does not start with b'"),
        ("CARD-7f3a9c-SECRET", "does not start with b'"),
        ("'CARD-7f3a9c-SECRET'", "does not start with b'"),
        ("u'CARD-7f3a9c-SECRET'", "does not start with b'"),
        ("b CARD-7f3a9c-SECRET", "does not start with b'"),
        ("rb'CARD-7f3a9c-SECRET'", "raw literal"),
        ("br'CARD-7f3a9c-SECRET'", "raw literal"),
        ("b'''CARD-7f3a9c-SECRET'''", "triple-quoted"),
        ("b'CARD-7f3a9c-SECRET", "not closed"),
        ("b'", "not closed"),
        ("b'CARD-7f3a9c-SECRET\\'", "not closed"),
        ("b'CARD-7f3a9c-SECRET\\", "ends inside an escape"),
        ("b'CARD-7f3a9c-SECRET'CARD", "text after its closing quote"),
        ("b'CARD' b'7f3a9c-SECRET'", "text after its closing quote"),
        ("b'CARD-7f3a9c-SECRET' ", "text after its closing quote"),
        (" b'CARD-7f3a9c-SECRET'", "does not start with b'"),
        ("b'CARD-7f3a9c-SECRET\n'", "line break at position 20"),
        ("b'CARD-7f3a9c-SECRETé'", "non-ASCII character at position 20"),
        ("b'CARD-7f3a9c-SECRET\\x4'", "invalid \\x escape at position 20"),
        ("b'CARD-7f3a9c-SECRET\\xZZ'", "invalid \\x escape"),
        ("b'CARD-7f3a9c-SECRET\\400'", "octal escape above \\377"),
    ],
)
def test_malformed_literals_are_refused_without_quoting_them(text: str, why: str) -> None:
    with pytest.raises(BytesLiteralError) as caught:
        parse_bytes_literal(text, MAX_LITERAL_CHARS)
    assert why in str(caught.value)
    assert "CARD" not in str(caught.value) and "SECRET" not in str(caught.value)


def test_literal_length_is_bounded_before_parsing() -> None:
    text = "b'" + "A" * 100 + "'"
    assert parse_bytes_literal(text, len(text)) == b"A" * 100
    with pytest.raises(BytesLiteralError, match=f"is {len(text)} characters long; at most {len(text) - 1}"):
        parse_bytes_literal(text, len(text) - 1)


# ------------------------------------------------------------------------------------------- redaction


def test_a_token_becomes_its_fingerprint_in_the_canonical_form() -> None:
    raw = reader_payload(f"b'{CARD}'", extra_field="CARD-7f3a9c-SECRET too")
    value, outcome = redact_credentials(raw, KEY)
    fp = expected_fp(CARD.encode())
    # The exact bytes: key order, no spaces, only these fields.
    assert (
        value
        == (f'{{"timestamp":"{TS}","credential":{{"fingerprint":"{fp}","key_id":"k1","length":{len(CARD)}}}}}').encode()
    )
    assert outcome == "token"
    assert CARD.encode() not in value


def test_the_domain_example_token_includes_its_quotes() -> None:
    value, outcome = redact_credentials(reader_payload("b'\"Hello World\"'"), KEY)
    assert outcome == "token"
    assert json.loads(value)["credential"] == {
        "fingerprint": expected_fp(b'"Hello World"'),
        "key_id": "k1",
        "length": 13,
    }


def test_escapes_are_fingerprinted_as_the_bytes_they_denote() -> None:
    token = b"\x01\x00\xffA'\\\"\n"
    data = "b'\\x01\\x00\\xffA\\'\\\\\"\\n'"
    assert ast.literal_eval(data) == token  # the hand-written literal says what the test means
    value, outcome = redact_credentials(reader_payload(data), KEY)
    assert outcome == "token"
    assert json.loads(value)["credential"] == {"fingerprint": expected_fp(token), "key_id": "k1", "length": 8}


def test_the_same_card_has_the_same_fingerprint_everywhere_and_another_key_gives_another() -> None:
    one = json.loads(redact_credentials(reader_payload(f"b'{CARD}'"), KEY).value)["credential"]
    two = json.loads(redact_credentials(reader_payload(f'b"{CARD}"', other=1), KEY).value)["credential"]
    assert one == two
    rotated = CredentialKey("k2", b"another-secret-of-the-unit-tests")
    three = json.loads(redact_credentials(reader_payload(f"b'{CARD}'"), rotated).value)["credential"]
    assert three["key_id"] == "k2"
    assert three["fingerprint"] == expected_fp(CARD.encode(), "another-secret-of-the-unit-tests")
    assert three["fingerprint"] != one["fingerprint"]


def test_an_empty_token_is_a_token_of_length_zero() -> None:
    value, outcome = redact_credentials(reader_payload("b''"), KEY)
    assert outcome == "token"
    assert json.loads(value) == {
        "timestamp": TS,
        "credential": {"fingerprint": expected_fp(b""), "key_id": "k1", "length": 0},
    }


def test_tokens_up_to_1023_bytes() -> None:
    token = ("Q" * MAX_TOKEN_BYTES).encode()
    value, outcome = redact_credentials(reader_payload(f"b'{token.decode()}'"), KEY)
    assert outcome == "token"
    assert json.loads(value)["credential"] == {"fingerprint": expected_fp(token), "key_id": "k1", "length": 1023}
    # 1023 bytes written as \xHH escapes: the longest literal there is.
    escaped = "b'" + "\\xff" * MAX_TOKEN_BYTES + "'"
    assert len(escaped) == MAX_LITERAL_CHARS
    value, outcome = redact_credentials(reader_payload(escaped), KEY)
    assert (outcome, json.loads(value)["credential"]["length"]) == ("token", 1023)
    assert json.loads(value)["credential"]["fingerprint"] == expected_fp(b"\xff" * 1023)


def test_a_token_over_1023_bytes_is_unparsed() -> None:
    raw = reader_payload("b'" + "Q" * (MAX_TOKEN_BYTES + 1) + "'")
    value, outcome = redact_credentials(raw, KEY)
    assert outcome == "unparsed"
    assert json.loads(value) == {
        "timestamp": TS,
        "unparsed": "the token in 'data' has 1024 bytes; at most 1023",
        "credential": {"fingerprint": expected_fp(raw), "key_id": "k1", "length": len(raw)},
    }
    longest = reader_payload("b'" + "\\xff" * MAX_TOKEN_BYTES + "A'")
    assert json.loads(redact_credentials(longest, KEY).value)["unparsed"] == (
        f"field 'data' is {MAX_LITERAL_CHARS + 1} characters long; at most {MAX_LITERAL_CHARS}"
    )


@pytest.mark.parametrize(
    ("token", "indicator"),
    [
        (bytes([2, 2, 1, 0, 0, 0, 3, 3]), "02 02 01 00 00 00 03 03"),  # EVENTS.md's example
        (bytes([2, 3]), "02 03"),
        (
            bytes([2]) + bytes(range(0xA0, 0xBE)) + bytes([3]),
            "02 " + " ".join(f"{b:02X}" for b in range(0xA0, 0xBE)) + " 03",
        ),
    ],
)
def test_indicator_responses_are_kept_as_hex(token: bytes, indicator: str) -> None:
    assert len(token) <= 32
    value, outcome = redact_credentials(reader_payload(repr(token)), KEY)
    assert outcome == "indicator"
    assert value == f'{{"timestamp":"{TS}","indicator":"{indicator}"}}'.encode()


@pytest.mark.parametrize(
    "token",
    [
        bytes([2]) + b"A" * 31 + bytes([3]),  # 33 bytes: too long for an indicator
        bytes([2]) + b"0012345678" + bytes([3]),  # a card number wrapped in STX .. ETX by a serial reader
        bytes([2, 1]) + b"CARD" + bytes([0, 3]),  # text inside a binary frame
        bytes([2]) + b"CARD",  # no ETX
        b"CARD" + bytes([3]),  # no STX
        bytes([3, 2]),
        bytes([2]),
        bytes([3]),
    ],
)
def test_anything_else_between_stx_and_etx_is_a_credential(token: bytes) -> None:
    value, outcome = redact_credentials(reader_payload(repr(token)), KEY)
    assert outcome == "token"
    assert json.loads(value)["credential"] == {"fingerprint": expected_fp(token), "key_id": "k1", "length": len(token)}


@pytest.mark.parametrize(
    ("raw", "reason", "timestamp"),
    [
        (f"not json {CARD}".encode(), "payload is not valid JSON in UTF-8 (error at character 0)", None),
        (f'{{"timestamp": "{TS}", "data": "b\'{CARD}\'"'.encode(), "payload is not valid JSON", None),
        (b"\xff\xfe" + CARD.encode(), "payload is not valid JSON", None),
        (f'{{"timestamp": "{TS}", "data": NaN, "x": "{CARD}"}}'.encode(), "payload is not valid JSON", None),
        (b"", "payload is not valid JSON", None),
        (json.dumps([TS, f"b'{CARD}'"]).encode(), "payload is a JSON array; expected an object", None),
        (json.dumps(f"b'{CARD}'").encode(), "payload is a JSON string; expected an object", None),
        (json.dumps({"timestamp": TS, "credential": CARD}).encode(), "payload has no 'data' field", TS),
        (reader_payload(None), "field 'data' is a JSON null", TS),
        (reader_payload([CARD]), "field 'data' is a JSON array", TS),
        (reader_payload({"uid": CARD}), "field 'data' is a JSON object", TS),
        (reader_payload(42), "field 'data' is a JSON number", TS),
        (reader_payload(CARD), "field 'data' does not start with b'", TS),
        (reader_payload(f"b'{CARD}"), "field 'data' is not closed by its quote", TS),
        (reader_payload(f"b'{CARD}é'"), "field 'data' holds a non-ASCII character at position 20", TS),
        (reader_payload(f"b'{CARD}\\x4'"), "field 'data' has an invalid \\x escape at position 20", TS),
        (reader_payload(f"rb'{CARD}'"), "field 'data' is a raw literal", TS),
        (json.dumps({"timestamp": 1700000000, "data": CARD}).encode(), "field 'data' does not start", None),
    ],
)
def test_what_cannot_be_parsed_keeps_only_a_fingerprint_of_the_whole_payload(
    raw: bytes, reason: str, timestamp: str | None
) -> None:
    value, outcome = redact_credentials(raw, KEY)
    assert outcome == "unparsed"
    assert CARD.encode() not in value
    out = json.loads(value)
    assert out["unparsed"].startswith(reason)
    assert "\n" not in out["unparsed"] and "CARD" not in out["unparsed"]
    assert out["credential"] == {"fingerprint": expected_fp(raw), "key_id": "k1", "length": len(raw)}
    assert out.get("timestamp") == timestamp
    assert set(out) == ({"timestamp"} if timestamp else set()) | {"unparsed", "credential"}


def test_an_oversized_payload_is_not_parsed() -> None:
    raw = reader_payload(f"b'{CARD}'", padding="x" * MAX_PAYLOAD_BYTES)
    value, outcome = redact_credentials(raw, KEY)
    assert outcome == "unparsed"
    assert json.loads(value) == {
        "unparsed": f"payload has {len(raw)} bytes; a reader payload has at most {MAX_PAYLOAD_BYTES}",
        "credential": {"fingerprint": expected_fp(raw), "key_id": "k1", "length": len(raw)},
    }


@pytest.mark.parametrize("timestamp", [1700000000, None, True, [TS], {"t": TS}])
def test_a_timestamp_that_is_not_a_string_is_left_out(timestamp: object) -> None:
    raw = json.dumps({"timestamp": timestamp, "data": f"b'{CARD}'"}).encode()
    value, outcome = redact_credentials(raw, KEY)
    assert outcome == "token"
    assert json.loads(value) == {
        "credential": {"fingerprint": expected_fp(CARD.encode()), "key_id": "k1", "length": len(CARD)}
    }


def test_a_string_timestamp_is_kept_as_received_even_when_not_valid() -> None:
    # EVENTS.md: as received when a string; the processor judges it (bad-timestamp).
    for ts in ("2026-03-01T10:00:00Z", "yesterday", "", "2026-03-01 10:00:00 ünïcode"):
        raw = json.dumps({"timestamp": ts, "data": "b'x'"}).encode()
        assert json.loads(redact_credentials(raw, KEY).value)["timestamp"] == ts


def test_a_missing_timestamp_stays_missing() -> None:
    value, _ = redact_credentials(json.dumps({"data": f"b'{CARD}'"}).encode(), KEY)
    assert "timestamp" not in json.loads(value)


# ----------------------------------------------------------------------------------------- settings


def test_settings_read_their_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("F2_CREDENTIAL_KEY_ID", "k7")
    monkeypatch.setenv("F2_CREDENTIAL_SECRET", SECRET)
    monkeypatch.setenv("F2_CREDENTIAL_PREVIOUS_KEYS", "k5:an-older-secret-0000000, k6:the-previous-secret-0000")
    settings = CredentialSettings()
    key = settings.current_key()
    assert key.key_id == "k7"
    assert key.fingerprint(b"x") == expected_fp(b"x")
    assert [(k.key_id, k.fingerprint(b"x")) for k in settings.previous()] == [
        ("k5", expected_fp(b"x", "an-older-secret-0000000")),
        ("k6", expected_fp(b"x", "the-previous-secret-0000")),
    ]
    assert SECRET not in repr(settings) and "older-secret" not in repr(settings)


def test_defaults_key_id_k1_and_no_previous_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("F2_CREDENTIAL_KEY_ID", "F2_CREDENTIAL_PREVIOUS_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("F2_CREDENTIAL_SECRET", SECRET)
    settings = CredentialSettings()
    assert settings.current_key().key_id == "k1"
    assert settings.previous() == []


def test_a_missing_secret_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("F2_CREDENTIAL_SECRET", raising=False)
    with pytest.raises(CredentialKeyError, match="F2_CREDENTIAL_SECRET is not set"):
        CredentialSettings().current_key()
    monkeypatch.setenv("F2_CREDENTIAL_SECRET", "")
    with pytest.raises(CredentialKeyError, match="F2_CREDENTIAL_SECRET is not set"):
        CredentialSettings().current_key()


def test_a_short_secret_or_bad_key_id_is_refused_without_showing_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("F2_CREDENTIAL_SECRET", "tooshort-SECRET")
    with pytest.raises(CredentialKeyError) as caught:
        CredentialSettings().current_key()
    assert "F2_CREDENTIAL_SECRET is 15 characters long; use at least 16" in str(caught.value)
    assert "tooshort" not in str(caught.value)
    monkeypatch.setenv("F2_CREDENTIAL_SECRET", SECRET)
    for bad in ("", "k 1", "k1:x", "k1,k2", "-k1", "k" * 33):
        monkeypatch.setenv("F2_CREDENTIAL_KEY_ID", bad)
        with pytest.raises(CredentialKeyError, match=r"F2_CREDENTIAL_KEY_ID .* is not a valid key id"):
            CredentialSettings().current_key()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("k0", "entry 1 has no ':'"),
        ("k0:long-enough-SECRET-0001,", "entry 2 is empty"),
        ("k0:short-SECRET", "entry 1's secret is 12 characters long"),
        # Written the wrong way round: whatever is wrong, the message shows neither part.
        ("long-enough-SECRET-0001:k0", "entry 1's secret is 2 characters long"),
        ("long-enough-SECRET-0001-and-more-than-32:k0-and-a-long-enough-secret", "entry 1's id is not a valid"),
        ("k0:long-enough-SECRET-0001,k0:long-enough-SECRET-0002", "entry 2 repeats the key id"),
        ("bad id:long-enough-SECRET-0001", "entry 1's id is not a valid key id"),
    ],
)
def test_malformed_previous_keys_are_refused_without_showing_secrets(text: str, why: str) -> None:
    with pytest.raises(CredentialKeyError) as caught:
        parse_previous_keys(text, "F2_CREDENTIAL_PREVIOUS_KEYS")
    assert why in str(caught.value)
    assert "SECRET" not in str(caught.value)


def test_previous_keys_may_not_reuse_the_current_key_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("F2_CREDENTIAL_SECRET", SECRET)
    monkeypatch.setenv("F2_CREDENTIAL_KEY_ID", "k2")
    monkeypatch.setenv("F2_CREDENTIAL_PREVIOUS_KEYS", "k2:long-enough-secret-0001")
    with pytest.raises(CredentialKeyError, match="holds the current key id 'k2'"):
        CredentialSettings().previous()


def test_previous_keys_empty_text_is_none() -> None:
    assert parse_previous_keys("", "X") == []
    assert parse_previous_keys("  ", "X") == []


def test_secrets_may_hold_colons() -> None:
    (key,) = parse_previous_keys("k0:a:b:c-long-enough-secret", "X")
    assert key == make_key("k0", "a:b:c-long-enough-secret", id_setting="i", secret_setting="s")


def test_the_bridge_refuses_to_start_without_the_secret() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("F2_")}
    result = subprocess.run(
        [sys.executable, "-m", "streaming.bridge"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 78, result.stderr
    assert "F2_CREDENTIAL_SECRET is not set" in result.stderr


# ------------------------------------------------------------------------------------ reader topics


@pytest.mark.parametrize(
    ("topic", "reader"),
    [
        ("tele/f2-aabbccddee01/access-control-mode/J1/reader-1", True),
        ("tele/f2-aabbccddee01/access-control-mode/J1/READER-1", True),
        ("tele/f2-aabbccddee01/access-control-mode/J1/Reader-2", True),
        ("tele/f2-aabbccddee01/access-control-mode/J1/reader-1/extra/levels", True),
        ("tele/f2-aabbccddee01/access-control-mode/J1/reader", True),
        ("tele/f2-aabbccddee01/access-control-mode/J1/reader-1/", True),
        ("tele/f2-aabbccddee01/access-control-mode/reader-1", True),
        ("stat/f2-aabbccddee01/READER/J1/x", True),
        ("tele/f2-AABBCCDDEE01/access-control-mode/J9/qrreaderx", True),
        ("tele/f2-aabbccddee01/sensor-mode/J1/sensor-1", False),
        ("stat/f2-aabbccddee01/access-control-mode/J1/strike-1", False),
        ("stat/f2-aabbccddee01/access-control-mode/J1/exit-buttons", False),
        ("tele/f2-aabbccddee01/access-control-mode/J1/read-er-1", False),
    ],
)
def test_the_broad_reader_rule(topic: str, reader: bool) -> None:
    assert is_reader(topic) is reader
