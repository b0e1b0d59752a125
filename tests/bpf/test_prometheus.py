"""A real Prometheus scrapes the sidecar and reads its request counter back."""

from __future__ import annotations

import requests

from tests.bpf.conftest import new_stream
from tests.support.capture import CaptureProcess
from tests.support.prometheus import prometheus


def test_prometheus_scrapes_a_nonzero_request_counter(echo_server, redis_srv):
    """Prometheus (Debian's) scrapes /metrics of rewind-capture; after traffic its query API
    returns rewind_capture_requests_total > 0 for that target."""
    with CaptureProcess(echo_server.port, redis_srv.url, new_stream("prom")) as cap:
        with prometheus([f"127.0.0.1:{cap.metrics_port}"]) as prom:
            session = requests.Session()
            for i in range(10):
                session.get(f"{echo_server.url}/prom/{i}", timeout=5)
            result = prom.wait_for("rewind_capture_requests_total > 0", timeout=30)
    assert float(result[0]["value"][1]) >= 10
    assert result[0]["metric"]["instance"] == f"127.0.0.1:{cap.metrics_port}"
