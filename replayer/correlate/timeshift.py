"""Timestamps of the capture time in a request, found and shifted by the replay's offset.

``find_times(req, capture_ns)`` lists values in headers, query parameters, JSON leaves and form
fields that are instants within ``window_s`` of the capture time ``capture_ns`` (the record's
``ts_ns``): ISO-8601 (``2026-12-04T10:00:00.123Z``, ``+01:00``, a space for ``T``, no zone =
UTC), epoch seconds (10 digits, optionally with a fraction), epoch milliseconds (13 digits) and
HTTP dates (``Fri, 04 Dec 2026 10:00:00 GMT``). ``shift_times(req, offset_ns, capture_ns)``
moves each by ``offset_ns`` and writes it back in its own format: the same precision, the same
zone notation, a JSON number stays a number. Numbers that only look like times but are not near
the capture time (ids, amounts) are not touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

from replayer.correlate.places import Use, request_slots
from replayer.correlate.substitute import Substituted, substitute

__all__ = ["Stamp", "find_times", "shift_times"]

WINDOW_S = 2 * 86400  # an instant this close to the capture time is taken for one of it
_PLACES = frozenset({"header", "query", "json", "form"})
_ISO = re.compile(r"(?<![\d])(\d{4})-(\d{2})-(\d{2})([T ])(\d{2}):(\d{2})(?::(\d{2})(?:([.,])(\d{1,9}))?)?"
                  r"(Z|[+-]\d{2}(?::?\d{2})?)?(?![\d])")
_EPOCH = re.compile(r"(?<![\d.])(\d{13}|\d{10}(?:\.\d{1,9})?)(?![\d.])")
_HTTP_DATE = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")


@dataclass(frozen=True, slots=True)
class Stamp:
    use: Use
    text: str  # as written in the request
    kind: str  # iso | epoch_s | epoch_ms | http_date
    instant_ns: int


def find_times(req, capture_ns: int, window_s: float = WINDOW_S) -> list[Stamp]:
    """Every capture-time instant ``req`` carries in a header, query, JSON or form value."""
    lo, hi = capture_ns - int(window_s * 1e9), capture_ns + int(window_s * 1e9)
    out = []
    for slot in request_slots(req):
        if slot.use.place not in _PLACES or slot.use.encoding == "base64":
            continue
        for text, kind, ns in _instants(slot.text):
            if lo <= ns <= hi:
                out.append(Stamp(slot.use, text, kind, ns))
    return out


def shift_times(req, offset_ns: int, capture_ns: int, window_s: float = WINDOW_S) -> Substituted:
    """``req`` with every capture-time instant moved by ``offset_ns``, each in its format."""
    stamps = find_times(req, capture_ns, window_s)
    mapping = {s.text: _shifted(s, offset_ns) for s in stamps}
    return substitute(req, mapping, [s.use for s in stamps]) if mapping else Substituted(req, 0)


def _instants(text: str):
    for m in _ISO.finditer(text):
        try:
            yield m.group(0), "iso", _iso_ns(m)
        except ValueError:
            pass
    for m in _EPOCH.finditer(text):
        digits = m.group(1)
        if len(digits) == 13:
            yield digits, "epoch_ms", int(digits) * 1_000_000
        else:
            whole, _, frac = digits.partition(".")
            yield digits, "epoch_s", int(whole) * 10**9 + int((frac + "0" * 9)[:9])
    for m in _HTTP_DATE.finditer(text):
        try:
            yield m.group(0), "http_date", int(parsedate_to_datetime(m.group(0)).timestamp()) * 10**9
        except (TypeError, ValueError):
            pass


def _zone(text: str | None):
    if not text or text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0)) * sign


def _iso_ns(m: re.Match) -> int:
    y, mo, d, _t, h, mi, s, _sep, frac, zone = m.groups()
    from datetime import timezone

    tz = _zone(zone)
    tzinfo = tz if tz is UTC else timezone(tz)
    dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0), tzinfo=tzinfo)
    return int(dt.timestamp()) * 10**9 + int(((frac or "") + "0" * 9)[:9])


def _shifted(s: Stamp, offset_ns: int) -> str:
    ns = s.instant_ns + offset_ns
    if s.kind == "epoch_ms":
        return str(ns // 1_000_000)
    if s.kind == "epoch_s":
        whole, _, frac = s.text.partition(".")
        return str(ns // 10**9) + (f".{ns % 10**9:09d}"[: len(frac) + 1] if frac else "")
    if s.kind == "http_date":
        return format_datetime(datetime.fromtimestamp(ns // 10**9, UTC), usegmt=True)
    m = _ISO.match(s.text)
    _y, _mo, _d, t, _h, _mi, sec, sep, frac, zone = m.groups()
    from datetime import timezone

    tz = _zone(zone)
    dt = datetime.fromtimestamp(ns // 10**9, tz if tz is UTC else timezone(tz))
    out = dt.strftime(f"%Y-%m-%d{t}%H:%M") + (dt.strftime(":%S") if sec is not None else "")
    if frac:
        out += sep + f"{ns % 10**9:09d}"[: len(frac)]
    return out + (zone or "")
