"""The pure parts of enrollment: request parsing, the claim and one-time checks, token buckets, settings,
the client's URL handling and the service's log format. No network, no database."""

from __future__ import annotations

import json
import logging
import ssl
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from certs.authority import CertificateAuthority, generate_csr
from certs.enroll_client import EnrollmentError, endpoint
from certs.enrollment import JsonLogFormatter, covers_host, log_event, server_tls_context
from certs.enrollment_rules import (
    CLAIM_REJECTED_MESSAGE,
    ENROLL_PATH,
    MAX_BODY_BYTES,
    MAX_CLAIMING_CODE_CHARS,
    EnrollmentState,
    Refusal,
    body_length,
    check_claim,
    check_enrollable,
    codes_match,
    parse_enroll_request,
)
from certs.rate_limit import RateLimiter, TokenBucket
from certs.settings import EnrollSettings

MAC = "aabbccddee01"
OTHER = "aabbccddee02"
CODE = "claim-aabbccddee01"
JSON = "application/json"


@pytest.fixture(scope="module")
def csr_pem() -> str:
    return generate_csr(MAC)[1].decode()


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def refusal_of(raw: bytes, content_type: str | None = JSON) -> Refusal:
    with pytest.raises(Refusal) as caught:
        parse_enroll_request(raw, content_type)
    return caught.value


# -- request parsing ---------------------------------------------------------------------------


def test_a_csr_request_parses(csr_pem: str) -> None:
    request = parse_enroll_request(body(mac=MAC, claiming_code=CODE, csr=csr_pem), JSON)
    assert request.mac == MAC and request.claiming_code == CODE
    assert request.csr_pem == csr_pem.encode() and not request.generate_key
    assert request.key_source == "csr"


def test_a_generate_key_request_parses() -> None:
    request = parse_enroll_request(body(mac=MAC, claiming_code=CODE, generate_key=True), "application/json")
    assert request.generate_key and request.csr_pem is None and request.key_source == "generated"


def test_content_type_may_carry_a_charset(csr_pem: str) -> None:
    raw = body(mac=MAC, claiming_code=CODE, csr=csr_pem)
    assert parse_enroll_request(raw, "Application/JSON; charset=utf-8").mac == MAC


def test_the_request_repr_hides_the_code_and_the_csr(csr_pem: str) -> None:
    request = parse_enroll_request(body(mac=MAC, claiming_code=CODE, csr=csr_pem), JSON)
    assert CODE not in repr(request) and "BEGIN" not in repr(request)
    assert MAC in repr(request)


@pytest.mark.parametrize(
    ("raw", "content_type", "reason", "says"),
    [
        (b'{"mac": "aabbccddee01"}', None, "content-type", "application/json"),
        (b'{"mac": "aabbccddee01"}', "text/plain", "content-type", "application/json"),
        (b"{not json", JSON, "invalid-json", "not valid UTF-8 JSON"),
        (b"\xff\xfe", JSON, "invalid-json", "not valid UTF-8 JSON"),
        (b"[1, 2]", JSON, "not-an-object", "JSON object"),
        (b'"aabbccddee01"', JSON, "not-an-object", "JSON object"),
        (b"[" * 30000 + b"]" * 30000, JSON, "invalid-json", "not valid UTF-8 JSON"),
    ],
)
def test_malformed_bodies_are_400(raw: bytes, content_type: str | None, reason: str, says: str) -> None:
    refusal = refusal_of(raw, content_type)
    assert (refusal.status, refusal.error, refusal.reason) == (400, "bad-request", reason)
    assert says in refusal.message


def test_an_oversized_body_is_413() -> None:
    refusal = refusal_of(b" " * (MAX_BODY_BYTES + 1))
    assert (refusal.status, refusal.error) == (413, "payload-too-large")


@pytest.mark.parametrize(
    ("content_length", "transfer_encoding", "status", "reason"),
    [
        (None, "chunked", 400, "transfer-encoding"),
        ("12", "chunked", 400, "transfer-encoding"),
        (None, None, 411, "no-content-length"),
        ("twelve", None, 400, "bad-content-length"),
        ("-1", None, 400, "bad-content-length"),
        (str(64 * 1024 + 4096 + 1), None, 413, "body-too-large"),
    ],
)
def test_the_body_length_is_checked_from_the_headers(
    content_length: str | None, transfer_encoding: str | None, status: int, reason: str
) -> None:
    with pytest.raises(Refusal) as caught:
        body_length(content_length, transfer_encoding)
    assert (caught.value.status, caught.value.reason) == (status, reason)


def test_a_body_length_up_to_the_limit_is_accepted() -> None:
    assert body_length(" 0 ", None) == 0
    assert body_length(str(64 * 1024 + 4096), None) == 64 * 1024 + 4096  # a 64 KiB CSR and the other fields


def test_duplicate_fields_are_refused() -> None:
    raw = b'{"mac": "aabbccddee01", "mac": "aabbccddee02", "claiming_code": "x", "generate_key": true}'
    refusal = refusal_of(raw)
    assert (refusal.status, refusal.reason) == (400, "duplicate-field") and "'mac'" in refusal.message


def test_unknown_fields_are_named() -> None:
    refusal = refusal_of(body(mac=MAC, claiming_code=CODE, generate_key=True, serial="1"))
    assert refusal.reason == "unknown-field" and "'serial'" in refusal.message


@pytest.mark.parametrize(
    ("fields", "reason", "says"),
    [
        ({"claiming_code": CODE, "generate_key": True}, "missing-mac", "mac is missing"),
        ({"mac": "AABBCCDDEE01", "claiming_code": CODE, "generate_key": True}, "invalid-mac", "did you mean"),
        (
            {"mac": "aa:bb:cc:dd:ee:01", "claiming_code": CODE, "generate_key": True},
            "invalid-mac",
            "12 lower",
        ),
        ({"mac": 1, "claiming_code": CODE, "generate_key": True}, "invalid-mac", "12 lowercase hex"),
        ({"mac": "a" * 5000, "claiming_code": CODE, "generate_key": True}, "invalid-mac", "12 lowercase hex"),
        ({"mac": MAC, "generate_key": True}, "missing-claiming-code", "claiming_code is missing"),
        ({"mac": MAC, "claiming_code": "", "generate_key": True}, "invalid-claiming-code", "non-empty"),
        ({"mac": MAC, "claiming_code": 1234, "generate_key": True}, "invalid-claiming-code", "string"),
        (
            {"mac": MAC, "claiming_code": "x" * (MAX_CLAIMING_CODE_CHARS + 1), "generate_key": True},
            "invalid-claiming-code",
            f"at most {MAX_CLAIMING_CODE_CHARS}",
        ),
        ({"mac": MAC, "claiming_code": CODE}, "missing-csr", "generate_key: true"),
        ({"mac": MAC, "claiming_code": CODE, "generate_key": False}, "missing-csr", "PEM CSR"),
        ({"mac": MAC, "claiming_code": CODE, "generate_key": "yes"}, "invalid-generate-key", "true or false"),
        ({"mac": MAC, "claiming_code": CODE, "csr": 12}, "invalid-csr", "PEM text"),
        ({"mac": MAC, "claiming_code": CODE, "csr": "hello"}, "invalid-csr", "BEGIN CERTIFICATE REQUEST"),
    ],
)
def test_bad_fields_are_400_with_a_clear_message(fields: dict[str, object], reason: str, says: str) -> None:
    refusal = refusal_of(body(**fields))
    assert (refusal.status, refusal.reason) == (400, reason)
    assert says in refusal.message


def test_csr_and_generate_key_together_are_refused(csr_pem: str) -> None:
    refusal = refusal_of(body(mac=MAC, claiming_code=CODE, csr=csr_pem, generate_key=True))
    assert refusal.reason == "csr-and-generate-key"


def test_a_csr_for_another_mac_is_refused() -> None:
    other_csr = generate_csr(OTHER)[1].decode()
    refusal = refusal_of(body(mac=MAC, claiming_code=CODE, csr=other_csr))
    assert (refusal.status, refusal.reason) == (400, "csr-common-name")
    assert f"CN={MAC}" in refusal.message


def test_a_csr_with_extra_subject_names_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, MAC), x509.NameAttribute(NameOID.COMMON_NAME, OTHER)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    assert refusal_of(body(mac=MAC, claiming_code=CODE, csr=pem)).reason == "csr-common-name"


def test_a_csr_whose_signature_does_not_verify_is_refused(csr_pem: str) -> None:
    der = bytearray(x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x55  # inside the signature
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()
    refusal = refusal_of(body(mac=MAC, claiming_code=CODE, csr=tampered))
    assert refusal.reason in {"csr-signature", "invalid-csr"} and refusal.status == 400


def test_refusal_messages_never_repeat_the_code(csr_pem: str) -> None:
    secret = "s3cret-claiming-code"
    cases = [
        body(mac="AABBCCDDEE01", claiming_code=secret, generate_key=True),
        body(mac=MAC, claiming_code=secret),
        body(mac=MAC, claiming_code=secret, csr="junk"),
        body(mac=MAC, claiming_code=secret, csr=csr_pem, generate_key=True),
        body(mac=MAC, claiming_code=secret, extra=1),
        body(mac=MAC, claiming_code=secret + "x" * 300, generate_key=True),
    ]
    for raw in cases:
        refusal = refusal_of(raw)
        assert secret not in refusal.message and secret not in refusal.reason


# -- claim and one-time checks -----------------------------------------------------------------


def test_codes_match_only_when_equal_and_present() -> None:
    assert codes_match(CODE, CODE)
    assert not codes_match(CODE, CODE + " ")
    assert not codes_match(CODE, "claim-aabbccddee02")
    assert not codes_match(CODE, None)
    assert not codes_match("", "")
    assert not codes_match("", None)
    assert codes_match("ünïcødé-€", "ünïcødé-€")
    assert not codes_match("a", "a" * 1000)
    assert not codes_match("\ud800", "\udc00")  # lone surrogates from JSON do not crash the comparison


def test_check_claim_accepts_the_right_code() -> None:
    check_claim(CODE, True, CODE)


@pytest.mark.parametrize(
    ("known", "expected", "reason"),
    [
        (False, None, "unknown-mac"),
        (True, None, "no-claiming-code"),
        (True, "", "no-claiming-code"),
        (True, "claim-other", "wrong-code"),
    ],
)
def test_check_claim_refusals_look_the_same_to_the_client(known: bool, expected: str | None, reason: str) -> None:
    with pytest.raises(Refusal) as caught:
        check_claim(CODE, known, expected)
    refusal = caught.value
    assert (refusal.status, refusal.error, refusal.reason) == (403, "claim-rejected", reason)
    assert refusal.body() == {"error": "claim-rejected", "message": CLAIM_REJECTED_MESSAGE}


def _state(allowed: bool) -> EnrollmentState:
    return EnrollmentState(MAC, "abc", datetime(2025, 1, 1, tzinfo=UTC), 1, allowed)


def test_a_first_enrollment_is_allowed() -> None:
    assert check_enrollable(MAC, None) is False


def test_an_allowed_reenrollment_is_allowed() -> None:
    assert check_enrollable(MAC, _state(True)) is True


def test_a_second_enrollment_is_409_and_says_how_to_allow_it() -> None:
    with pytest.raises(Refusal) as caught:
        check_enrollable(MAC, _state(False))
    refusal = caught.value
    assert (refusal.status, refusal.error) == (409, "already-enrolled")
    assert f"f2 certs allow-reenroll {MAC}" in refusal.message


# -- token buckets -----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_time(0.0) == pytest.approx(0.5)
    assert not bucket.take(0.4)
    assert bucket.take(0.5)
    assert bucket.tokens(100.0) == 3  # never more than the burst


def test_bucket_ignores_a_clock_going_back() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=10.0)
    assert bucket.take(10.0)
    assert not bucket.take(5.0)
    assert bucket.take(11.0)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0), (float("inf"), 1), (1, float("nan"))])
def test_bucket_refuses_nonsense_limits(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, 0.0)


def test_limiter_refuses_a_client_beyond_its_burst_and_not_the_others() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, 3, 100.0, 100, clock=clock)
    assert [limiter.check("10.0.0.1").allowed for _ in range(5)] == [True, True, True, False, False]
    refused = limiter.check("10.0.0.1")
    assert refused.scope == "client" and refused.retry_after == pytest.approx(1.0)
    assert refused.retry_after_header == "1"
    assert limiter.check("10.0.0.2").allowed
    clock.now += 1.0
    assert limiter.check("10.0.0.1").allowed
    assert not limiter.check("10.0.0.1").allowed


def test_limiter_global_bucket_caps_all_clients_together() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100.0, 100, 0.5, 4, clock=clock)
    decisions = [limiter.check(f"10.0.0.{n}") for n in range(6)]
    assert [d.allowed for d in decisions] == [True, True, True, True, False, False]
    assert decisions[-1].scope == "global" and decisions[-1].retry_after_header == "2"
    clock.now += 2.0
    assert limiter.check("10.0.0.99").allowed


def test_refused_requests_take_no_tokens() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, 1, 100.0, 3, clock=clock)
    assert limiter.check("a").allowed
    for _ in range(10):
        assert not limiter.check("a").allowed  # hammering does not drain the global bucket
    assert limiter.check("b").allowed and limiter.check("c").allowed


def test_retry_after_header_rounds_up() -> None:
    clock = FakeClock()
    limiter = RateLimiter(0.4, 1, 100.0, 100, clock=clock)
    limiter.check("a")
    assert limiter.check("a").retry_after_header == "3"  # 2.5 s


def test_limiter_remembers_a_bounded_number_of_clients() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, 2, 1e9, 10**9, max_clients=100, clock=clock)
    for n in range(1000):
        assert limiter.check(f"client-{n}").allowed
        assert limiter.tracked_clients() <= 100


def test_limiter_evicts_idle_buckets_before_busy_ones() -> None:
    clock = FakeClock()
    limiter = RateLimiter(0.001, 1, 1e9, 10**9, max_clients=3, clock=clock)
    assert limiter.check("attacker").allowed
    assert not limiter.check("attacker").allowed
    for name in ("idle-1", "idle-2"):
        limiter.check(name)
    clock.now += 5000.0  # the idle clients' buckets refill; the attacker's too, so take again
    assert limiter.check("attacker").allowed
    limiter.check("new-1")  # at capacity: drops full buckets, not the attacker's empty one
    assert not limiter.check("attacker").allowed


# -- settings ----------------------------------------------------------------------------------


def test_enroll_settings_come_from_f2_enroll_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("F2_ENROLL_HOST", "0.0.0.0")
    monkeypatch.setenv("F2_ENROLL_PORT", "28443")
    monkeypatch.setenv("F2_ENROLL_PER_IP_RATE", "0.5")
    monkeypatch.setenv("F2_ENROLL_PER_IP_BURST", "4")
    monkeypatch.setenv("F2_ENROLL_GLOBAL_RATE", "3")
    monkeypatch.setenv("F2_ENROLL_GLOBAL_BURST", "9")
    monkeypatch.setenv("F2_ENROLL_URL", "https://ignored.example")  # the clients' variable, not ours
    settings = EnrollSettings()
    assert (settings.host, settings.port) == ("0.0.0.0", 28443)
    assert (settings.per_ip_rate, settings.per_ip_burst) == (0.5, 4)
    assert (settings.global_rate, settings.global_burst) == (3.0, 9)


def test_enroll_settings_defaults_are_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOST", "PORT", "PER_IP_RATE", "PER_IP_BURST", "GLOBAL_RATE", "GLOBAL_BURST"):
        monkeypatch.delenv(f"F2_ENROLL_{name}", raising=False)
    settings = EnrollSettings()
    assert settings.host == "127.0.0.1" and settings.port == 18443
    assert settings.tls_cert is None and settings.tls_key is None


@pytest.mark.parametrize(
    ("name", "value"),
    [("PER_IP_RATE", "0"), ("PER_IP_BURST", "0"), ("GLOBAL_RATE", "-1"), ("PORT", "70000")],
)
def test_enroll_settings_refuse_nonsense(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"F2_ENROLL_{name}", value)
    with pytest.raises(ValidationError):
        EnrollSettings()


def test_enroll_settings_need_both_tls_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("F2_ENROLL_TLS_CERT", "/tmp/x.crt")
    monkeypatch.delenv("F2_ENROLL_TLS_KEY", raising=False)
    with pytest.raises(ValidationError, match="both"):
        EnrollSettings()


# -- client URL --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://127.0.0.1:18443", ("127.0.0.1", 18443, ENROLL_PATH)),
        ("https://127.0.0.1:18443/", ("127.0.0.1", 18443, ENROLL_PATH)),
        ("https://enroll.example", ("enroll.example", 443, ENROLL_PATH)),
        ("https://enroll.example:8443/v1/enroll", ("enroll.example", 8443, "/v1/enroll")),
        ("https://[::1]:18443", ("::1", 18443, ENROLL_PATH)),
    ],
)
def test_client_endpoint(url: str, expected: tuple[str, int, str]) -> None:
    assert endpoint(url) == expected


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:18443", "https"),
        ("127.0.0.1:18443", "https"),
        ("https://", "no host"),
        ("https://user:pw@host", "credentials"),
        ("https://host:notaport", "invalid port"),
    ],
)
def test_client_refuses_unsafe_urls(url: str, says: str) -> None:
    with pytest.raises(EnrollmentError, match=says):
        endpoint(url)


# -- TLS name check ----------------------------------------------------------------------------


def test_covers_host_reads_the_server_certificate_sans(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "pki", broker_user=None)
    ca.init()
    issued = ca.issue_server(["localhost", "*.f2.example"], ["127.0.0.1"])
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    assert covers_host(cert, "127.0.0.1")
    assert covers_host(cert, "localhost")
    assert covers_host(cert, "LOCALHOST")
    assert covers_host(cert, "enroll.f2.example")
    assert covers_host(cert, "0.0.0.0")  # wildcard listen address: nothing to check
    assert not covers_host(cert, "10.1.2.3")
    assert not covers_host(cert, "a.b.f2.example")
    assert not covers_host(cert, "f2.example")


def test_the_server_context_refuses_anything_older_than_tls_12(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "pki", broker_user=None)
    ca.init()
    context = server_tls_context(ca, EnrollSettings(host="127.0.0.1", port=0))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    # No server certificate yet: one was issued for the listen address.
    assert covers_host(x509.load_pem_x509_certificate(ca.server_cert_path.read_bytes()), "127.0.0.1")


# -- log format --------------------------------------------------------------------------------


def test_log_lines_are_json_with_the_event_fields(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="f2.enroll"):
        log_event(logging.WARNING, "enroll.refused", status=403, reason="wrong-code", mac=MAC, client="1.2.3.4")
    (record,) = caplog.records
    assert record.getMessage() == "enroll.refused status=403 reason=wrong-code mac=aabbccddee01 client=1.2.3.4"
    line = json.loads(JsonLogFormatter().format(record))
    assert line["event"] == "enroll.refused" and line["reason"] == "wrong-code" and line["status"] == 403
    assert line["level"] == "warning" and line["logger"] == "f2.enroll"
