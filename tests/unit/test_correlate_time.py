"""Capture-time timestamps found and shifted in their own format; JWTs re-signed with their
times moved when the key verifies them (HS256, RS256, ES256), left alone and counted otherwise."""

from __future__ import annotations

import warnings

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from replayer.correlate import HttpRequest
from replayer.correlate.jwts import JwtCounts, load_key, shift_jwts
from replayer.correlate.timeshift import find_times, shift_times

CAP = 1733306400 * 10**9  # 2024-12-04T10:00:00Z
DAY = 86400 * 10**9


def req(target="/", headers=(), body=b"") -> HttpRequest:
    headers = list(headers) + ([("Content-Type", "application/json"),
                                ("Content-Length", str(len(body)))] if body else [])
    return HttpRequest("POST", target, headers, body)


def test_found_in_each_place_and_format():
    """ISO-8601 (zones, fractions, space), epoch s and ms, an HTTP date, in a query (also
    percent-encoded), headers and JSON (string and number)."""
    r = req("/x?since=2024-12-04T09%3A59%3A00Z&t=1733306399&id=1234567890",
            [("X-Ts", "1733306400123"), ("If-Modified-Since", "Wed, 04 Dec 2024 09:00:00 GMT")],
            b'{"at": "2024-12-04 11:00:00.123+01:00", "ts": 1733306400.5, "qty": 3}')
    found = {(s.use.place, s.use.name, s.kind) for s in find_times(r, CAP)}
    assert found == {("query", "since", "iso"), ("query", "t", "epoch_s"),
                     ("header", "x-ts", "epoch_ms"), ("header", "if-modified-since", "http_date"),
                     ("json", "$.at", "iso"), ("json", "$.ts", "epoch_s")}


def test_shifted_keeping_format():
    """Each value moves by the offset and keeps its precision, zone and type."""
    r = req("/x?since=2024-12-04T09%3A59%3A00Z&t=1733306399",
            [("X-Ts", "1733306400123"), ("If-Modified-Since", "Wed, 04 Dec 2024 09:00:00 GMT")],
            b'{"at": "2024-12-04 11:00:00.123+01:00", "ts": 1733306400.5, "n": 3}')
    out = shift_times(r, 2 * DAY + 1_500_000_000, CAP).request
    assert out.target == "/x?since=2024-12-06T09%3A59%3A01Z&t=1733479200"
    assert dict(out.headers)["X-Ts"] == "1733479201623"
    assert dict(out.headers)["If-Modified-Since"] == "Fri, 06 Dec 2024 09:00:01 GMT"
    assert orjson.loads(out.body) == {"at": "2024-12-06 11:00:01.623+01:00", "ts": 1733479202.0,
                                      "n": 3}


def test_numbers_far_from_the_capture_are_not_times():
    """Ten-digit ids and years-away instants are left alone."""
    r = req("/x?id=1234567890&old=2019-01-01T00:00:00Z", body=b'{"n": 9999999999}')
    assert find_times(r, CAP) == []
    assert shift_times(r, DAY, CAP).request == r


def _token(key, alg):
    return jwt.encode({"sub": "alice", "iat": 1733306000, "nbf": 1733306000, "exp": 1733309600,
                       "scope": "x"}, key, algorithm=alg, headers={"kid": "k1"})


def _pem(private) -> bytes:
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())


@pytest.mark.parametrize("alg", ["HS256", "RS256", "ES256"])
def test_jwt_resigned_with_times_moved(alg):
    """With the signing key, a JWT in Authorization and in a cookie is signed again with iat,
    nbf and exp moved, other claims and the kid kept; it verifies with the same key."""
    if alg == "HS256":
        material = b"s3cret-key-of-at-least-32-bytes!!"
        verify = material
    elif alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        material, verify = _pem(private), private.public_key()
    else:
        private = ec.generate_private_key(ec.SECP256R1())
        material, verify = _pem(private), private.public_key()
    key = load_key(material)
    tok = _token(key, alg)
    counts = JwtCounts()
    out = shift_jwts(req("/p", [("Authorization", f"Bearer {tok}"), ("Cookie", f"jwt={tok}")]),
                     86400, key, counts)
    new = dict(out.request.headers)["Authorization"].split()[1]
    assert dict(out.request.headers)["Cookie"] == f"jwt={new}" and new != tok
    claims = jwt.decode(new, verify, algorithms=[alg], options={"verify_exp": False})
    assert claims == {"sub": "alice", "iat": 1733392400, "nbf": 1733392400, "exp": 1733396000,
                      "scope": "x"}
    assert jwt.get_unverified_header(new)["kid"] == "k1"
    assert counts.resigned == 1


def test_jwt_without_or_with_wrong_key_left_and_counted():
    """No key: unchanged, counted unsigned; a key that does not verify it: unchanged, counted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = _token(b"right-key-of-at-least-32-bytes!!!", "HS256")
    r = req(f"/p?t={tok}")
    counts = JwtCounts()
    assert shift_jwts(r, 60, None, counts).request == r and counts.unsigned == 1
    counts = JwtCounts()
    wrong = load_key(b"wrong-key-of-at-least-32-bytes!!!")
    assert shift_jwts(r, 60, wrong, counts).request == r and counts.key_mismatch == 1
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    counts = JwtCounts()
    assert shift_jwts(r, 60, rsa_key, counts).request == r and counts.key_mismatch == 1
