"""A plain Locust FastHttpUser, the baseline ``make bench-replay`` sets rewind-replay against.

Each user GETs ``/items/<n>`` in a loop; ``BENCH_USER_RPS`` (requests a second per user) paces
it with Locust's ``constant_throughput``; unset or 0: no wait (as fast as answered).

    BENCH_USER_RPS=10 locust -f ci/bench/plain_locustfile.py --headless --users 100 \\
        --spawn-rate 100 --run-time 10s --host http://127.0.0.1:8080 --csv out/plain
"""

from __future__ import annotations

import itertools
import os

from locust import FastHttpUser, constant, constant_throughput, task

_RPS = float(os.environ.get("BENCH_USER_RPS", "0") or 0)
_N = itertools.count()


class PlainUser(FastHttpUser):
    wait_time = constant_throughput(_RPS) if _RPS > 0 else constant(0)

    @task
    def get_item(self) -> None:
        self.client.get(f"/items/{next(_N) % 1000}", name="GET /items/:id")
