"""One PromQL query asked of a Prometheus as an instant query: ``PromSource``.

Each series of the answer is its own watched series, labelled by the query and, when the
answer carries labels, by them (``__name__`` left out). A query that cannot be asked (network,
HTTP error, a PromQL error, an answer that is not a vector or scalar) raises ``SourceFailed``
with Prometheus's own message; the sampler counts and logs it and asks again next time.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request

from replayer.watch.procfs import SourceFailed

__all__ = ["PromSource"]


class PromSource:
    kind = "prometheus"

    def __init__(self, base_url: str, query: str, *, timeout: float = 5.0) -> None:
        self.url = base_url.rstrip("/") + "/api/v1/query"
        self.query = query
        self.label = query
        self.timeout = timeout

    def sample(self) -> list[tuple[str, float, str | None]]:
        body = urllib.parse.urlencode({"query": self.query}).encode()
        try:
            with urllib.request.urlopen(self.url, data=body, timeout=self.timeout) as resp:
                answer = json.load(resp)
        except urllib.error.HTTPError as exc:  # 400/422: a bad query, with a JSON error
            raise SourceFailed(f"HTTP {exc.code}: {_error_of(exc)}") from None
        except (OSError, ValueError) as exc:
            raise SourceFailed(f"{self.url}: {exc}") from None
        if answer.get("status") != "success":
            raise SourceFailed(f"{answer.get('errorType')}: {answer.get('error')}")
        data = answer["data"]
        if data["resultType"] == "scalar":
            return [(self.query, float(data["result"][1]), None)]
        if data["resultType"] != "vector":
            raise SourceFailed(f"the query gives a {data['resultType']}, not an instant vector "
                               "(leave out the [range])")
        out = []
        for r in data["result"]:
            value = float(r["value"][1])
            if math.isnan(value):
                continue
            labels = {k: v for k, v in r["metric"].items() if k != "__name__"}
            shown = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            out.append((f"{self.query} @ {{{shown}}}" if labels else self.query, value, None))
        return out


def _error_of(exc: urllib.error.HTTPError) -> str:
    try:
        return json.load(exc).get("error") or exc.reason
    except (ValueError, OSError):
        return str(exc.reason)
