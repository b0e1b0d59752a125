"""``CorrelatedConnection``: a replay connection with a ``Correlator`` between pacing and socket.

The pacing calls ``finalise(step, prepared)`` just before it takes the send time (one marked
hook in ``replayer.engine.pacing`` and ``replayer.engine.live``): the step goes out rewritten
(built again only when its request changed). ``send`` sends it and, before returning, binds
the values of the answer and rewrites the recorded answer the step is compared with. A step
correlation has nothing to do with costs one ``None`` check. The answer's headers come from the
bytes ``replayer.engine.http1.Connection`` kept of its head (``raw_head``), parsed only for an
answer whose record made values.
"""

from __future__ import annotations

from typing import NamedTuple

from httptools import HttpParserError, HttpResponseParser

from replayer.engine.correlation.correlator import Correlator, Pending

__all__ = ["RELEASE_AFTER_S", "CorrelatedConnection", "answer_headers"]

RELEASE_AFTER_S = 0.25  # a first request waiting longer than this releases its idle socket


class CorrelatedConnection:
    __slots__ = ("inner", "corr", "_pending", "_fresh")

    def __init__(self, inner, corr: Correlator) -> None:
        self.inner, self.corr = inner, corr
        self._pending: Pending | None = None
        self._fresh = True  # connected (or not yet) and nothing sent on it

    def prepare(self, s):
        """The step's bytes; for a step that carries values, built later (``finalise``)."""
        return _LATER if s.corr is not None and s.corr[2] else self.inner.prepare(s)

    def connect(self) -> None:
        self.inner.connect()

    def close(self) -> None:
        self.inner.close()

    def finalise(self, s, req):
        """(step, prepared) as they go out: values carried, times shifted (see Correlator).

        The pacing opened the socket ahead of the first request. When that request has to
        wait for a value longer than ``RELEASE_AFTER_S``, the idle socket is closed first: a
        server with a thread per connection (gunicorn sync/gthread) holds a thread for it, and
        the answer the request waits for may need that thread (the send reconnects)."""
        waited = 0.0
        if self._fresh:
            self._fresh = False
            if self.inner.sock is not None and s.corr is not None:
                t = self.corr.waiting.now()
                if not self.corr.ready(s, RELEASE_AFTER_S):
                    self.inner.close()
                waited = self.corr.waiting.now() - t
        p = self.corr.finalise(s, waited)
        self._pending = p
        if p is None:
            return s, (self.inner.prepare(s) if req is _LATER else req)
        if req is _LATER or (p.step.target, p.step.headers, p.step.body) != (
                s.target, s.headers, s.body):
            req = self.inner.prepare(p.step)
        if req.data is None:  # not sent: the values it would make never come
            self._pending = None
            self.corr.answered(p, 0, [], b"")
        return p.step, req

    def send(self, req) -> tuple[int, bytes]:
        p, self._pending = self._pending, None
        try:
            status, body = self.inner.send(req)
        except BaseException:
            if p is not None:
                self.corr.answered(p, 0, [], b"")
            raise
        if p is not None:
            s = p.step
            headers = answer_headers(self.inner.raw_head) if s.corr is not None and s.corr[1] \
                else []
            self.corr.answered(p, status, headers, body)
        return status, body


class _Later(NamedTuple):
    """In place of a ``Prepared`` request whose bytes ``finalise`` builds (never sent as is)."""

    data: bytes | None = None
    head: bool = False
    error: str | None = "correlation: built when it is sent (finalise was not called)"


_LATER = _Later()


class _Collect:
    __slots__ = ("headers",)

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []

    def on_message_begin(self) -> None:  # an interim (1xx) answer's headers are not kept
        self.headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))


def answer_headers(raw: list[bytes] | bytes | None) -> list[tuple[str, str]]:
    """The final answer's headers (names and values as sent) from the bytes of its head."""
    if not raw:
        return []
    c = _Collect()
    p = HttpResponseParser(c)
    try:
        p.feed_data(raw if isinstance(raw, bytes) else b"".join(raw))
    except HttpParserError:
        pass
    return c.headers
