"""JWTs in a request, re-signed with their times moved: ``shift_jwts(req, offset_s, key)``.

A replay days after the capture sends tokens whose ``exp`` has passed. Given the key the tokens
were signed with (``load_key``: a PEM private key for RS*/PS*/ES*, any other bytes are an HMAC
secret for HS*), each JWT the request carries (anywhere: ``Authorization``, a cookie, a query
parameter, a body) whose signature that key verifies is signed again with ``iat``, ``nbf`` and
``exp`` moved by ``offset_s`` and its other claims and header fields kept (PyJWT does the JOSE
work). Without a key, or when the key does not verify a token (another issuer, another
algorithm), the token is left as it is and counted, never guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization

from replayer.correlate.substitute import Substituted, substitute

__all__ = ["JwtCounts", "find_jwts", "load_key", "resign", "shift_jwts"]

_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{2,}\.[A-Za-z0-9_\-]*")
TIME_CLAIMS = ("iat", "nbf", "exp")
_OPTIONS = {"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False,
            "verify_iss": False, "verify_sub": False, "verify_jti": False}


@dataclass(slots=True)
class JwtCounts:
    resigned: int = 0
    unsigned: int = 0  # left as they were: no key given
    key_mismatch: int = 0  # left as they were: the key did not verify them
    unreadable: int = 0  # left as they were: not a JWT PyJWT can read


def load_key(material: bytes):
    """A signing key from bytes: a PEM private key, or else an HMAC secret."""
    if material.lstrip().startswith(b"-----BEGIN"):
        return serialization.load_pem_private_key(material, password=None)
    return material


def find_jwts(text: str) -> list[str]:
    return _JWT.findall(text)


def resign(token: str, offset_s: int, key, counts: JwtCounts | None = None) -> str:
    """``token`` signed again by ``key`` with its time claims moved, or ``token`` unchanged."""
    counts = counts if counts is not None else JwtCounts()
    if key is None:
        counts.unsigned += 1
        return token
    try:
        header = jwt.get_unverified_header(token)
        alg = header.get("alg", "")
        verify_key = key.public_key() if hasattr(key, "public_key") else key
        claims = jwt.decode(token, verify_key, algorithms=[alg], options=_OPTIONS)
    except jwt.InvalidSignatureError:
        counts.key_mismatch += 1
        return token
    except (jwt.InvalidKeyError, jwt.InvalidAlgorithmError, TypeError, ValueError):
        counts.key_mismatch += 1  # e.g. an RSA key for an HS256 token
        return token
    except jwt.PyJWTError:
        counts.unreadable += 1
        return token
    for c in TIME_CLAIMS:
        if isinstance(claims.get(c), int | float) and not isinstance(claims.get(c), bool):
            claims[c] = claims[c] + offset_s
    extra = {k: v for k, v in header.items() if k != "alg"}
    counts.resigned += 1
    return jwt.encode(claims, key, algorithm=alg, headers=extra)


def shift_jwts(req, offset_s: int, key, counts: JwtCounts | None = None) -> Substituted:
    """``req`` with every JWT it carries re-signed with times moved (see the module docstring)."""
    counts = counts if counts is not None else JwtCounts()
    found: set[str] = set()
    for text in [req.target, *(v for _k, v in req.headers),
                 req.body.decode("latin-1") if req.body else ""]:
        found.update(find_jwts(text))
    mapping = {t: resign(t, offset_s, key, counts) for t in sorted(found)}
    return substitute(req, mapping)
