"""CPU cost of the redaction step per record, for a few policies, on realistic JSON API records
(tests/support/traffic.py: an orders API, ~600 bytes of JSON per request + response).

    .venv/bin/python ci/bench/redact.py [--records 2000] [--out bench-results/redact.json]

Prints microseconds of CPU per record (best of 5 runs, process time) for each policy.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sidecar.redact.apply import Redactor  # noqa: E402
from sidecar.redact.policy import parse_policy  # noqa: E402
from ci.bench.lib import write_result  # noqa: E402
from tests.support.traffic import api_records  # noqa: E402

EMAIL = r"- {name: email, pattern: '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}'}"
CARD = r"- {name: card, pattern: '\b(?:\d[ -]?){15}\d\b'}"
POLICIES = {
    "defaults, no secret header in the record": ("", True),
    "defaults, Authorization masked": ("", False),
    "defaults + header, query and drop_request rules": (
        "headers: [X-Session]\nquery: [customer]\ndrop_request: {path: ^/admin}\n", False),
    "defaults + 2 JSON paths": ("json: [$.customer_id, {path: '$.items[*].sku', action: drop}]\n", False),
    "defaults + 1 regex (e-mail) over target, headers, bodies": (f"regex:\n  {EMAIL}\n", False),
    "all of the above + a card-number regex": (
        "headers: [X-Session]\nquery: [customer]\ndrop_request: {path: ^/admin}\n"
        "json: [$.customer_id, {path: '$.items[*].sku', action: drop}]\n"
        f"regex:\n  {EMAIL}\n  {CARD}\n", False),
}


def cost(policy: str, records, strip_auth: bool) -> float:
    redactor = Redactor(parse_policy(policy), b"k" * 32)
    batch = copy.deepcopy(records)
    if strip_auth:
        for r in batch:
            r.headers = [h for h in r.headers if h[0] != "Authorization"]
    t0 = time.process_time()
    for r in batch:
        redactor.apply(r)
    return (time.process_time() - t0) / len(batch) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=2000, help="records per run (default 2000)")
    p.add_argument("--out", default="bench-results/redact.json", help="where the JSON goes")
    args = p.parse_args()
    records = list(api_records(args.records))
    size = sum(len(r.body) + len(r.resp_body) for r in records) / len(records)
    print(f"{len(records)} records, {size:.0f} body bytes each on average (request + response)")
    rows = []
    for name, (policy, strip) in POLICIES.items():
        us = min(cost(policy, records, strip) for _ in range(5))
        rows.append({"policy": name, "us_per_record": round(us, 2)})
        print(f"{us:7.1f} us/record  {name}")
    write_result({"records": len(records), "body_bytes_avg": round(size), "policies": rows},
                 args.out)


if __name__ == "__main__":
    main()
