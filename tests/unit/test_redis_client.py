"""The Redis client's URL handling: what reaches a log line or an error message."""

from __future__ import annotations

import pytest

from sidecar.common.redis_client import connect, redact_url


@pytest.mark.parametrize("url, shown", [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("redis://:s3cret@redis:6379/0", "redis://***@redis:6379/0"),
    ("rediss://app:s3cret@redis:6380/1", "rediss://***@redis:6380/1"),
    ("redis://redis:6379/0?password=s3cret&db=2", "redis://redis:6379/0?password=***&db=2"),
    ("unix:///run/redis@1.sock?db=0", "unix:///run/redis@1.sock?db=0"),
])
def test_redact_url_hides_every_credential_redis_py_reads(url, shown):
    """User and password before @ and a password= query value (redis-py reads all of them)
    become ***; an @ in a socket path is not a credential and stays."""
    assert redact_url(url) == shown


def test_bad_url_message_shows_the_redacted_url():
    """connect() names a bad URL the way redact_url shows it, password hidden."""
    with pytest.raises(ValueError) as err:
        connect("http://user:s3cret@localhost:6379/0")
    assert "'http://***@localhost:6379/0'" in str(err.value) and "s3cret" not in str(err.value)
