"""Debian's Prometheus on a free loopback port, scraping given targets every second.

    with prometheus(["127.0.0.1:9102"]) as prom:
        prom.wait_for('rewind_capture_requests_total > 0')   # -> result list
        prom.query("up")                                     # -> [{"metric": {...}, "value": [...]}]

Prometheus always scrapes itself (job "prometheus"); the given targets are job "targets".
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tests.support.servers import HOST, Server, start_server

__all__ = ["PROMETHEUS", "Prometheus", "prometheus"]

PROMETHEUS = "/usr/bin/prometheus"


class Prometheus(Server):
    """A running Prometheus with its HTTP query API."""

    def query(self, expr: str) -> list[dict]:
        """Evaluate `expr` now (`/api/v1/query`) and return `data.result`."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                answer = json.load(resp)
        except urllib.error.HTTPError as err:  # a bad expression is a 400 with a JSON error
            answer = json.load(err)
        if answer.get("status") != "success":
            raise RuntimeError(f"prometheus query {expr!r} failed: {answer.get('error')}")
        return answer["data"]["result"]

    def wait_for(self, expr: str, timeout: float = 15.0) -> list[dict]:
        """Poll `expr` until it returns a non-empty result; raise TimeoutError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus query {expr!r} still empty after {timeout} s")
            time.sleep(0.25)


def prometheus(scrape_targets: list[str] = (), *, metrics_path: str = "/metrics",
               timeout: float = 30.0) -> Prometheus:
    """Start Prometheus (scrape_interval 1s, storage in its workdir) scraping `host:port` targets."""
    targets = list(scrape_targets)
    bad = [t for t in targets if "://" in t or "/" in t]
    if bad:
        raise ValueError(f"scrape targets must be host:port (use metrics_path for the path): {bad}")

    def argv(port: int, workdir: Path) -> list[str]:
        config = workdir / "prometheus.yml"
        config.write_text(_config(f"{HOST}:{port}", targets, metrics_path))
        return [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={HOST}:{port}",
            "--log.level=warn",
        ]

    return start_server("prometheus", argv, ready=_ready, timeout=timeout,
                        server_class=Prometheus)


def _config(self_target: str, targets: list[str], metrics_path: str) -> str:
    # JSON is YAML: no YAML library needed.
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [self_target]}]},
        ],
    }
    if targets:
        config["scrape_configs"].append({
            "job_name": "targets",
            "metrics_path": metrics_path,
            "static_configs": [{"targets": targets}],
        })
    return json.dumps(config, indent=2) + "\n"


def _ready(server: Server) -> bool:
    try:
        with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False
