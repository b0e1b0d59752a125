"""Fixtures for the kernel tests: a real Redis, real servers, the real rewind-capture (root)."""

from __future__ import annotations

import itertools

import pytest

from tests.support.capture import CaptureProcess, StreamReader
from tests.support.redis_server import RedisServer
from tests.support.servers import python_http_server

_streams = itertools.count()


@pytest.fixture(scope="module")
def redis_srv():
    with RedisServer() as srv:
        yield srv


def new_stream(prefix: str) -> str:
    return f"{prefix}-{next(_streams)}"


@pytest.fixture(scope="module")
def echo_server():
    """Python's http.server answering with a JSON echo of what it read."""
    with python_http_server() as srv:
        yield srv


@pytest.fixture(scope="module")
def echo_capture(echo_server, redis_srv):
    """One capture of the echo server shared by a module's tests (the probe compiles once)."""
    stream = new_stream("echo")
    with CaptureProcess(echo_server.port, redis_srv.url, stream, "--idle-timeout", "30s") as cap:
        cap.reader = StreamReader(redis_srv.client(), stream)
        yield cap
    assert cap.proc.returncode == 0, cap.log_text()
