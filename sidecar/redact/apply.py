"""Redaction before storage: ``Redactor(policy, key).apply(record)`` masks or drops secrets in a
record in place and returns it, or returns None when a ``drop_request`` rule matched.

Masking is a keyed HMAC-SHA256: a secret becomes ``rwd_`` + the first 16 hex digits of
HMAC(key, secret bytes), so one secret gives one token on every sidecar that shares the key,
across restarts, and a replay can swap the token for a test credential. What is kept so the
replayed request still parses: the scheme of ``Authorization`` (``Bearer rwd_...``), cookie
names (``session=rwd_...``), the attributes of ``Set-Cookie``, query parameter names.

When a body changes, ``body_len`` and a ``Content-Length`` header change by the same amount, so
they stay consistent with what is stored (for a cut body: with the real, longer body).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from operator import itemgetter
from urllib.parse import unquote_to_bytes

import orjson

from sidecar.contract.record import Record
from sidecar.contract.tokens import TOKEN_HEX_DIGITS, TOKEN_PREFIX
from sidecar.redact.json_rules import apply_path
from sidecar.redact.metrics import RULE_KINDS, RedactMetrics
from sidecar.redact.policy import HeaderRule, Policy

__all__ = ["Masker", "Redactor"]

FRAMING = frozenset({"content-length", "transfer-encoding"})
_ALLOW_LIST = HeaderRule(action="mask", kind="allow_list")  # a header the allow list does not name
_NAME = itemgetter(0)
CLEAN_NAMES_MAX = 4096  # header names remembered as untouched by the policy (beyond: checked)
_SCHEME = re.compile(r"^([!#$%&'*+.^_`|~0-9A-Za-z-]+)(\s+)(\S.*)$", re.S)


class Masker:
    """Secret bytes -> ``rwd_<16 hex>`` (``sidecar.contract.tokens``), HMAC-SHA256 under ``key``."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def token(self, secret: bytes) -> str:
        return TOKEN_PREFIX + hmac.new(self._key, secret, hashlib.sha256).hexdigest()[:TOKEN_HEX_DIGITS]

    def text(self, secret: str) -> str:
        """A header value or target piece (latin-1: one code point per wire byte)."""
        return self.token(secret.encode("latin-1", "replace")) if secret else secret


class Redactor:
    def __init__(self, policy: Policy, key: bytes, metrics: RedactMetrics | None = None,
                 log=None) -> None:
        self.policy = policy
        self.mask = Masker(key)
        self.m = metrics or RedactMetrics()
        self._log = log
        self._headers = policy.header_actions()
        self._allow = policy.allow_headers
        self._json = {part: tuple(r for r in policy.json if part in r.parts)
                      for part in ("request", "response")}
        self._regex = {place: tuple(r for r in policy.regex if place in r.places)
                       for place in ("target", "headers", "body")}
        self._bodies = {part: bool(self._json[part] or self._regex["body"])  # any body rule
                        for part in ("request", "response")}
        self._seen: set = set()  # (what, detail) already logged once
        self._count = {k: self.m.fields.labels(k) for k in RULE_KINDS}  # no labels() per record
        # header names, as written, that no header rule and no allow list touches: whether one
        # does depends on the name alone, so a list made only of these is returned as it is
        self._clean: set[str] = set()

    # -- the record --------------------------------------------------------------------
    def apply(self, r: Record) -> Record | None:
        p = self.policy
        if p.drop_request and self._dropped(r):
            return None
        r.headers = self._header_list(r.headers)
        r.resp_headers = self._header_list(r.resp_headers)
        if p.query and "?" in r.target:
            r.target = self._query(r.target)
        for rule in self._regex["target"]:
            r.target = self._sub_text(rule, r.target)
        if self._regex["headers"]:
            # one search over all values first: most records have nothing to replace
            joined = "\n".join(v for _, v in r.headers + r.resp_headers)
            rules = tuple(x for x in self._regex["headers"] if x.text.search(joined))
            if rules:
                r.headers = self._regex_headers(r.headers, rules)
                r.resp_headers = self._regex_headers(r.resp_headers, rules)
        if r.body and self._bodies["request"]:
            self._body(r, "request")
        if r.resp_body and self._bodies["response"]:
            self._body(r, "response")
        return r

    def _dropped(self, r: Record) -> bool:
        path = r.target.split("?", 1)[0]
        for i, rule in enumerate(self.policy.drop_request):
            if rule.methods is not None and r.method.upper() not in rule.methods:
                continue
            if rule.path is not None and not rule.path.search(path):
                continue
            self.m.dropped_requests.inc()
            self._once("redact.request_dropped", i, rule=i, method=r.method, path=path[:200])
            return True
        return False

    # -- headers -----------------------------------------------------------------------
    def _header_list(self, headers: list) -> list:
        if self._clean.issuperset(map(_NAME, headers)):
            return headers
        rules, allow = self._headers, self._allow
        out, changed = [], False
        for k, v in headers:
            low = k.lower()
            hit = rules.get(low)
            if hit is None and allow is not None and low not in allow and low not in FRAMING:
                hit = _ALLOW_LIST
            if hit is None:
                out.append((k, v))
                continue
            changed = True
            self._count[hit.kind].inc()
            if hit.action == "mask":
                out.append((k, self._header_value(low, v)))
        if not changed and len(self._clean) < CLEAN_NAMES_MAX:
            self._clean.update(map(_NAME, headers))
        return out if changed else headers

    def _header_value(self, low: str, v: str) -> str:
        if low in ("authorization", "proxy-authorization"):
            m = _SCHEME.match(v)
            return f"{m.group(1)}{m.group(2)}{self.mask.text(m.group(3))}" if m else self.mask.text(v)
        if low == "cookie":
            return ";".join(self._cookie(c) for c in v.split(";"))
        if low == "set-cookie":
            first, sep, rest = v.partition(";")
            return self._cookie(first) + sep + rest
        return self.mask.text(v)

    def _cookie(self, pair: str) -> str:
        name, eq, value = pair.partition("=")
        if not eq:
            return self.mask.text(pair)
        return f"{name}={self.mask.text(value)}"

    def _regex_headers(self, headers: list, rules: tuple) -> list:
        out = []
        for k, v in headers:
            if k.lower() not in FRAMING:
                for rule in rules:
                    v = self._sub_text(rule, v)
            out.append((k, v))
        return out

    # -- target ------------------------------------------------------------------------
    def _query(self, target: str) -> str:
        path, _, query = target.partition("?")
        kept, changed = [], False
        for piece in query.split("&"):
            name, eq, value = piece.partition("=")
            action = self.policy.query.get(unquote_to_bytes(name).decode("latin-1"))
            if action is None:
                kept.append(piece)
                continue
            changed = True
            self._count["query"].inc()
            if action == "mask":
                kept.append(f"{name}={self.mask.token(unquote_to_bytes(value))}" if value else piece)
        return f"{path}?{'&'.join(kept)}" if changed else target

    def _sub_text(self, rule, text: str) -> str:
        if rule.action == "drop":
            new, n = rule.text.subn("", text)
        else:
            new, n = rule.text.subn(lambda m: self.mask.text(m.group()), text)
        if n:
            self._count["regex"].inc(n)
        return new

    # -- bodies ------------------------------------------------------------------------
    def _body(self, r: Record, part: str) -> None:
        req = part == "request"
        body = r.body if req else r.resp_body
        new = body
        if self._json[part] and _is_json(r.headers if req else r.resp_headers):
            new = self._json_body(r, part, body, r.truncated if req else r.resp_truncated)
            if new is None:  # on_unparsed_body: drop
                return
        for rule in self._regex["body"]:
            if rule.action == "drop":
                new, n = rule.raw.subn(b"", new)
            else:
                new, n = rule.raw.subn(lambda m: self.mask.token(m.group()).encode(), new)
            if n:
                self._count["regex"].inc(n)
        if new is not body and new != body:
            _replace_body(r, req, new)

    def _json_body(self, r: Record, part: str, body: bytes, truncated: bool) -> bytes | None:
        headers = r.headers if part == "request" else r.resp_headers
        reason = None
        if truncated:
            reason = "truncated"
        elif _encoded(headers):
            reason = "encoded"
        else:
            try:
                doc = orjson.loads(body)
            except orjson.JSONDecodeError:
                reason = "invalid_json"
        if reason is not None:
            self.m.unparsed.labels(part, reason).inc()
            self._once("redact.body_unparsed", (part, reason), part=part, reason=reason,
                       action=self.policy.on_unparsed_body)
            if self.policy.on_unparsed_body == "drop":
                _drop_body(r, part == "request")
                return None
            return body
        n = 0
        for rule in self._json[part]:
            n += apply_path(doc, rule.steps, self._masker(rule.action))
        if not n:
            return body
        self._count["json"].inc(n)
        return orjson.dumps(doc)

    def _masker(self, action: str):
        def act(container, key) -> int:
            if action == "drop":
                del container[key]
            else:
                v = container[key]
                secret = v.encode() if isinstance(v, str) else orjson.dumps(v)
                container[key] = self.mask.token(secret)
            return 1
        return act

    def _once(self, event: str, detail, **kw) -> None:
        """Log the first occurrence of each kind; the rest are only counted in metrics."""
        if self._log is not None and (event, detail) not in self._seen:
            self._seen.add((event, detail))
            self._log.info(event, first=True, **kw)


def _header(headers: list, name: str) -> str | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _is_json(headers: list) -> bool:
    ct = _header(headers, "content-type")
    return ct is not None and "json" in ct.lower()


def _encoded(headers: list) -> bool:
    enc = _header(headers, "content-encoding")
    return enc is not None and enc.strip().lower() not in ("", "identity")


def _replace_body(r: Record, req: bool, new: bytes) -> None:
    """Store ``new`` and keep body_len and Content-Length consistent with it."""
    old = r.body if req else r.resp_body
    delta = len(new) - len(old)
    if req:
        r.body, r.body_len = new, r.body_len + delta
        r.headers = _shift_length(r.headers, delta)
    else:
        r.resp_body, r.resp_body_len = new, r.resp_body_len + delta
        r.resp_headers = _shift_length(r.resp_headers, delta)


def _shift_length(headers: list, delta: int) -> list:
    out = []
    for k, v in headers:
        if k.lower() == "content-length" and v.strip().isdigit():
            v = str(int(v) + delta)
        out.append((k, v))
    return out


def _drop_body(r: Record, req: bool) -> None:
    """Store no body at all; ``truncated`` says the stored (empty) body is only a prefix."""
    if req:
        r.body, r.truncated = b"", r.truncated or r.body_len > 0
    else:
        r.resp_body, r.resp_truncated = b"", r.resp_truncated or r.resp_body_len > 0
