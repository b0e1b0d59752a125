"""Fixtures for integration tests: real services on loopback."""

from __future__ import annotations

import pytest

from tests.support.redis_server import RedisServer


@pytest.fixture
def redis_server():
    """A fresh, empty redis-server on a free loopback port, stopped and removed afterwards."""
    with RedisServer() as server:
        yield server
