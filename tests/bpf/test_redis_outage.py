"""Redis going away mid-capture loses nothing silently: delivered + dropped == sent."""

from __future__ import annotations

import threading
import time

import pytest

from tests.support.capture import CaptureProcess, StreamReader, connect
from tests.support.rawhttp import read_responses, request
from tests.support.redis_server import RedisServer


def _traffic(port: int, stop: threading.Event, sent: list[str]) -> None:
    s = connect(port)
    i = 0
    while not stop.is_set():
        target = f"/outage/{i}"
        s.sendall(request("GET", target))
        read_responses(s, 1)
        sent.append(target)
        i += 1
        time.sleep(0.01)
    s.close()


@pytest.mark.parametrize("queue_size", [100_000, 50])
def test_redis_stopped_for_10s(echo_server, queue_size):
    """Redis stops for 10 s while requests keep coming and then starts again: capture goes on,
    and the records delivered plus those counted as dropped equal the requests sent (with a
    50-record queue, drops really happen)."""
    with RedisServer(appendonly=True) as redis_srv:
        cap = CaptureProcess(echo_server.port, redis_srv.url, f"outage-{queue_size}",
                             "--queue-size", str(queue_size)).start()
        stop, sent = threading.Event(), []
        t = threading.Thread(target=_traffic, args=(echo_server.port, stop, sent))
        t.start()
        try:
            time.sleep(2)
            redis_srv.stop()
            time.sleep(10)
            redis_srv.restart()
            time.sleep(3)
        finally:
            stop.set()
            t.join(30)
        reader = StreamReader(redis_srv.client(), f"outage-{queue_size}")
        recs = reader.settle(lambda r: r.target.startswith("/outage/"), quiet=2, timeout=60)
        dropped = cap.metric("rewind_capture_dropped_records_total", reason="queue_full")
        assert cap.alive()
        assert cap.stop() == 0, cap.log_text()
    delivered = {r.target for r in recs}
    assert delivered <= set(sent)
    assert len(delivered) + dropped == len(sent), (len(delivered), dropped, len(sent))
    if queue_size == 50:
        assert dropped > 0
    else:
        assert dropped == 0
    assert cap.events("publisher.redis_unreachable") and cap.events("publisher.redis_back"), \
        cap.log_text()
