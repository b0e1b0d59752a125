"""The publisher against a real redis-server: round trip, trimming, outages, shutdown, bad input."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from sidecar.capture.metrics import CaptureMetrics
from sidecar.capture.publisher import Publisher
from sidecar.contract.record import Record
from sidecar.contract.streams import stream_key
from sidecar.common.redis_client import connect
from tests.support.redis_server import RedisServer

STREAM = "orders-api"
KEY = stream_key(STREAM)


def make_record(seq: int, conn: str = "node-a:4242:7:1700000000000000000") -> Record:
    return Record(
        ts_ns=1_700_000_000_000_000_000 + seq,
        conn=conn,
        seq=seq,
        client="10.0.0.9:51234",
        method="POST",
        target=f"/orders/{seq}?q=%C3%A9",
        version="1.1",
        headers=[("Host", "api"), ("X-Raw", bytes(range(0x80, 0x100)).decode("latin-1"))],
        body=bytes(range(256)) * 3,
        body_len=768,
        status=201,
        resp_headers=[
            ("Content-Type", "application/octet-stream"),
            ("X-Name", "café".encode().decode("latin-1")),
        ],
        resp_body=bytes(reversed(range(256))),
        resp_body_len=256,
        latency_us=1234,
        tls=seq % 2 == 1,
    )


def small_record(seq: int) -> Record:
    return Record(ts_ns=seq, conn="c", seq=seq, client="", method="GET", target="/", version="1.1")


def read_stream(client, key: str = KEY) -> list[Record]:
    return [Record.from_fields(fields) for _id, fields in client.xrange(key)]


def value(metrics: CaptureMetrics, name: str, **labels) -> float:
    v = metrics.registry.get_sample_value(f"rewind_capture_{name}", labels)
    return 0.0 if v is None else v


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def metrics() -> CaptureMetrics:
    return CaptureMetrics(CollectorRegistry())


@pytest.fixture
def stopped_server():
    """A redis-server that has run once (so its port is fixed) and is now stopped."""
    with RedisServer() as server:
        server.stop()
        yield server


def test_records_round_trip(redis_server, metrics):
    """Records read back with XRANGE equal what was put, binary bodies and non-ASCII headers
    included."""
    records = [make_record(i) for i in range(7)]
    pub = Publisher(connect(redis_server.url), STREAM, metrics=metrics, batch_size=3)
    pub.start()
    assert all(pub.put(r) for r in records)
    assert pub.flush(5.0)
    pub.stop()

    assert read_stream(connect(redis_server.url)) == records  # as a consumer would read them
    assert value(metrics, "published_records_total") == 7
    assert value(metrics, "queue_depth") == 0
    assert value(metrics, "redis_up") == 1


def test_maxlen_bounds_stream_length(redis_server, metrics):
    """MAXLEN ~ keeps the stream near maxlen however many records are published."""
    pub = Publisher(connect(redis_server.url), STREAM, metrics=metrics, maxlen=100, batch_size=200)
    pub.start()
    for i in range(3000):
        assert pub.put(small_record(i))
    assert pub.flush(10.0)
    pub.stop()

    length = redis_server.client().xlen(KEY)
    assert 100 <= length < 300  # "~" trims whole radix-tree nodes (100 entries each)
    assert value(metrics, "published_records_total") == 3000


def test_redis_down_at_start(stopped_server, metrics):
    """Records put while Redis is not yet up are all delivered once it starts, with a warning
    and redis_up going 0 -> 1."""
    records = [make_record(i) for i in range(50)]
    with capture_logs() as logs:
        pub = Publisher(connect(stopped_server.url), STREAM, metrics=metrics, batch_size=20)
        pub.start()
        assert all(pub.put(r) for r in records)
        time.sleep(2.0)
        assert value(metrics, "redis_up") == 0
        assert value(metrics, "queue_depth") == 50
        attempts = value(metrics, "publish_errors_total", kind="connection")
        assert 1 <= attempts <= 8  # backs off instead of spinning

        stopped_server.start()
        assert pub.flush(10.0)
        pub.stop()

    assert read_stream(stopped_server.client()) == records
    assert value(metrics, "redis_up") == 1
    assert value(metrics, "published_records_total") == 50
    warnings = [e for e in logs if e["event"] == "publisher.redis_unreachable"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
    assert warnings[0]["error"] and warnings[0]["queued"] >= 1
    back = [e for e in logs if e["event"] == "publisher.redis_back"]
    assert len(back) == 1 and back[0]["log_level"] == "info"
    assert back[0]["down_s"] >= 1.5 and back[0]["queued"] >= 1


@pytest.mark.parametrize(
    "queue_size", [100_000, 200], ids=["queue-holds-outage", "queue-overflows"]
)
def test_redis_restart_mid_stream(metrics, queue_size):
    """Across a Redis outage under continuous load, every record is delivered or counted as
    dropped."""
    with RedisServer(appendonly=True) as server:  # the AOF keeps the stream across the restart
        pub = Publisher(
            connect(server.url), STREAM, metrics=metrics, queue_size=queue_size, batch_size=50
        )
        pub.start()
        accepted: list[int] = []
        refused: list[int] = []
        stop_producing = threading.Event()

        def produce() -> None:
            seq = 0
            while not stop_producing.is_set():
                for _ in range(20):  # about 2,000 records/s
                    (accepted if pub.put(small_record(seq)) else refused).append(seq)
                    seq += 1
                time.sleep(0.01)

        producer = threading.Thread(target=produce)
        producer.start()
        try:
            time.sleep(0.5)
            assert value(metrics, "redis_up") == 1
            server.stop()
            time.sleep(2.0)
            assert value(metrics, "redis_up") == 0
            server.start()
            time.sleep(0.5)
        finally:
            stop_producing.set()
            producer.join()
        assert pub.flush(15.0)
        pub.stop()

        delivered = [r.seq for r in read_stream(server.client())]

    unique = set(delivered)
    assert unique == set(accepted)  # nothing accepted is missing, nothing else appears
    assert len(delivered) - len(unique) <= 50  # only a batch cut off mid-pipeline can repeat
    assert len(unique) + value(metrics, "dropped_records_total", reason="queue_full") == len(
        accepted
    ) + len(refused)
    assert value(metrics, "published_records_total") == len(accepted)
    if queue_size == 200:
        assert refused, "the small queue should have overflowed during the outage"
    else:
        assert not refused


def test_rejected_batch_is_counted_and_publishing_goes_on(redis_server, metrics):
    """A WRONGTYPE answer drops that batch as rejected, is counted and logged, and later records
    still go out."""
    r = redis_server.client()
    r.set(KEY, b"not a stream")
    with capture_logs() as logs:
        pub = Publisher(connect(redis_server.url), STREAM, metrics=metrics)
        pub.start()
        for i in range(5):
            pub.put(small_record(i))
        assert pub.flush(5.0)
        r.delete(KEY)
        pub.put(small_record(5))
        assert pub.flush(5.0)
        pub.stop()

    assert [rec.seq for rec in read_stream(r)] == [5]
    assert value(metrics, "dropped_records_total", reason="rejected") == 5
    assert value(metrics, "publish_errors_total", kind="wrongtype") >= 1
    assert value(metrics, "published_records_total") == 1
    assert any(e["event"] == "publisher.rejected" for e in logs)


def test_a_record_that_cannot_be_encoded_is_dropped_alone(redis_server, metrics):
    """A record whose fields cannot be encoded is dropped as rejected; the rest of its batch
    is published."""
    bad = small_record(1)
    bad.target = "/\u2603"  # not latin-1: a record carries one code point per wire byte
    pub = Publisher(connect(redis_server.url), STREAM, metrics=metrics)
    for r in (small_record(0), bad, small_record(2)):
        pub.put(r)
    pub.start()
    assert pub.flush(5.0)
    pub.stop()

    assert [rec.seq for rec in read_stream(redis_server.client())] == [0, 2]
    assert value(metrics, "dropped_records_total", reason="rejected") == 1
    assert value(metrics, "publish_errors_total", kind="unicodeencodeerror") == 1


def test_put_never_blocks_and_counts_a_full_queue(redis_server, metrics):
    """put() returns False at once when the queue is full, counts each drop, and warns once, not
    per record."""
    with capture_logs() as logs:
        pub = Publisher(connect(redis_server.url), STREAM, metrics=metrics, queue_size=10)
        t0 = time.monotonic()
        results = [pub.put(small_record(i)) for i in range(1000)]
        assert time.monotonic() - t0 < 0.5
        pub.start()
        assert pub.flush(5.0)
        pub.stop()

    assert results == [True] * 10 + [False] * 990
    assert value(metrics, "dropped_records_total", reason="queue_full") == 990
    assert [rec.seq for rec in read_stream(redis_server.client())] == list(range(10))
    assert len([e for e in logs if e["event"] == "publisher.queue_full"]) == 1


@pytest.fixture(params=["refused", "hung"])
def unreachable_url(request, stopped_server):
    """A Redis URL that refuses connections, or one that accepts and never answers."""
    if request.param == "refused":
        yield stopped_server.url
        return
    with socket.socket() as listener:  # listens, never accepts: the XADD reply never comes
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


def test_stop_with_redis_unreachable(unreachable_url, metrics):
    """stop() returns within its timeout and counts every record it could not publish as dropped
    at shutdown."""
    with capture_logs() as logs:
        pub = Publisher(connect(unreachable_url), STREAM, metrics=metrics, batch_size=100)
        pub.start()
        for i in range(1000):
            assert pub.put(small_record(i))
        time.sleep(0.3)
        t0 = time.monotonic()
        pub.stop(timeout=1.0)
        elapsed = time.monotonic() - t0
        assert not pub.put(small_record(1000))

    assert elapsed < 1.3
    assert value(metrics, "dropped_records_total", reason="shutdown") == 1001
    assert value(metrics, "published_records_total") == 0
    assert value(metrics, "queue_depth") == 0
    assert not pub.flush(0.1) or pub.depth == 0
    stopped = [e for e in logs if e["event"] == "publisher.stopped"]
    assert len(stopped) == 1 and stopped[0]["dropped_shutdown"] == 1000


def test_batch_on_the_wire_at_stop_is_counted_once(redis_server, metrics):
    """A batch still waiting for Redis's reply when stop() gives up is counted as dropped at
    shutdown, never also as published."""
    r = redis_server.client()
    pub = Publisher(connect(redis_server.url), STREAM, metrics=metrics)
    pub.start()
    r.client_pause(1000, all=False)  # Redis holds every write for 1 s: the XADDs wait on the wire
    for i in range(100):
        pub.put(small_record(i))
    time.sleep(0.2)
    t0 = time.monotonic()
    pub.stop(timeout=0.3)
    assert time.monotonic() - t0 < 0.6
    assert value(metrics, "dropped_records_total", reason="shutdown") == 100

    assert wait_for(lambda: r.xlen(KEY) > 0, 3.0)  # the paused batch does land afterwards
    time.sleep(0.2)
    assert value(metrics, "published_records_total") == 0
    assert value(metrics, "dropped_records_total", reason="shutdown") == 100


@pytest.mark.parametrize(
    "url",
    [
        "",
        "localhost:6379",
        "http://localhost:6379/0",
        "redis://",
        "redis://localhost:99999/0",
        "redis://localhost:6379/zero",
        "unix://",
    ],
)
def test_bad_url_is_a_clear_value_error(url):
    """A malformed Redis URL fails in connect() with a ValueError that names the URL problem."""
    with pytest.raises(ValueError, match="Redis URL"):
        connect(url)


def test_bad_url_error_hides_the_password():
    """The ValueError for a bad URL does not echo the password in it."""
    with pytest.raises(ValueError) as err:
        connect("http://user:s3cret@localhost:6379/0")
    assert "s3cret" not in str(err.value) and "***" in str(err.value)


@pytest.mark.parametrize("name", ["", "orders api", "orders{x}", "}", "tab\there", "nl\n"])
def test_bad_stream_name_is_a_clear_value_error(name, metrics):
    """A stream name that is empty or holds braces or whitespace is refused by stream_key and
    Publisher."""
    with pytest.raises(ValueError, match="stream name"):
        stream_key(name)
    with pytest.raises(ValueError, match="stream name"):
        Publisher(connect("redis://127.0.0.1:1/0"), name, metrics=metrics)


def test_stream_key_has_a_hash_tag():
    """stream_key wraps the name in a cluster hash tag."""
    assert stream_key("orders-api") == "rewind:{orders-api}:http"


def test_put_many_takes_a_batch_and_counts_what_does_not_fit(redis_server, metrics):
    """put_many() queues what fits under one lock and counts the rest as queue_full, with one
    warning: the records that fit are published in order."""
    with capture_logs() as logs:
        pub = Publisher(connect(redis_server.url), STREAM, metrics=metrics, queue_size=10)
        taken = [pub.put_many([small_record(i) for i in range(k, k + 8)]) for k in (0, 8)]
        pub.start()
        assert pub.flush(5.0)
        pub.stop()
    assert taken == [8, 2]
    assert value(metrics, "dropped_records_total", reason="queue_full") == 6
    assert [rec.seq for rec in read_stream(redis_server.client())] == list(range(10))
    assert len([e for e in logs if e["event"] == "publisher.queue_full"]) == 1


def test_a_batch_of_replies_is_read_without_a_call_per_reply(redis_server, metrics):
    """The replies to a 2,000-record batch are taken from the reader a socket read filled, not
    with a read_response() call each (the CPU saving _exchange is for; a redis-py upgrade that
    breaks it fails here), and every record is published."""
    from redis.connection import AbstractConnection

    calls = []
    real = AbstractConnection.read_response

    def counting(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    pub = Publisher(connect(redis_server.url), STREAM, metrics=metrics, batch_size=2000)
    assert pub.put_many([small_record(i) for i in range(2000)]) == 2000
    AbstractConnection.read_response = counting
    try:
        pub.start()
        assert pub.flush(10.0)
    finally:
        AbstractConnection.read_response = real
        pub.stop()
    assert value(metrics, "published_records_total") == 2000
    assert 0 < len(calls) <= 200  # a call per socket read (here ~50), not 2,000
