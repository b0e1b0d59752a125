"""Mixed multi-user traffic for the stateful API: values made in one answer come back later in
requests of the same user, on the same connection and on others.

Each user is a thread with its own connections (a new one every ``reconnect`` requests), its
own bearer token and its own cookie session. Per round: the JSON flow (create an order, read it,
update it with If-Match, find it by ref and by a base64 cursor, delete every other one) and the
web flow (log in through the form with its CSRF token, open the note form, post a note, follow
the redirect). Every answer's status is counted; anything but the expected one is a failure.

    python -m ci.stateful_api.traffic --url http://127.0.0.1:8080 --users 4 --rounds 5
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import re
import threading
from collections import Counter
from urllib.parse import urlencode, urlsplit

__all__ = ["run"]

_HIDDEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class Client:
    """One user: a keep-alive connection replaced every ``reconnect`` requests, and cookies."""

    def __init__(self, url: str, reconnect: int) -> None:
        u = urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.reconnect = reconnect
        self.conn: http.client.HTTPConnection | None = None
        self.sent = 0
        self.cookies: dict[str, str] = {}
        self.statuses: Counter = Counter()
        self.unexpected: list[str] = []

    def call(self, method: str, path: str, *, expect: int, json_body=None, form=None,
             headers=None) -> tuple[int, dict[str, str], bytes]:
        if self.conn is None or self.sent % self.reconnect == 0:
            if self.conn is not None:
                self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        self.sent += 1
        h = dict(headers or {})
        body = None
        if json_body is not None:
            body, h["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        elif form is not None:
            body, h["Content-Type"] = urlencode(form).encode(), "application/x-www-form-urlencoded"
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        self.conn.request(method, path, body=body, headers=h)
        resp = self.conn.getresponse()
        data = resp.read()
        for v in resp.headers.get_all("Set-Cookie") or ():
            name, _, value = v.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = value
        self.statuses[resp.status] += 1
        if resp.status != expect:
            self.unexpected.append(f"{method} {path}: {resp.status} (expected {expect})")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _api_flow(c: Client, user: str, rounds: int) -> None:
    _, _, body = c.call("POST", "/api/login", expect=200, json_body={"user": user})
    auth = {"Authorization": f"Bearer {json.loads(body)['token']}"}
    for i in range(rounds):
        _, h, body = c.call("POST", "/api/orders", expect=201, headers=auth,
                            json_body={"item": f"item-{i % 3}", "qty": 1 + i % 4})
        order = json.loads(body)
        path, tag = h["location"], h["etag"]
        c.call("GET", path, expect=200, headers=auth)
        _, h, _ = c.call("PUT", path, expect=200, headers={**auth, "If-Match": tag},
                         json_body={"qty": 5})
        c.call("GET", f"/api/orders?ref={order['ref']}", expect=200, headers=auth)
        cursor = base64.urlsafe_b64encode(json.dumps({"ref": order["ref"]}).encode())
        c.call("GET", f"/api/orders?cursor={cursor.decode().rstrip('=')}", expect=200, headers=auth)
        if i % 2:
            c.call("DELETE", f"/api/orders/{order['id']}", expect=204, headers=auth)


def _web_flow(c: Client, user: str, rounds: int) -> None:
    _, _, body = c.call("GET", "/web/login", expect=200)
    csrf = _HIDDEN.search(body.decode()).group(1)
    c.call("POST", "/web/login", expect=303, form={"csrf_token": csrf, "user": user})
    for i in range(rounds):
        _, _, body = c.call("GET", "/web/notes/new", expect=200)
        csrf = _HIDDEN.search(body.decode()).group(1)
        _, h, _ = c.call("POST", "/web/notes", expect=303,
                         form={"csrf_token": csrf, "text": f"note {i} of {user}"})
        c.call("GET", h["location"], expect=200)


def run(url: str, users: int = 4, rounds: int = 5, reconnect: int = 3) -> dict:
    """Run every user's flows (in parallel threads); returns statuses and unexpected answers."""
    clients: list[Client] = []
    errors: list[str] = []

    def one(n: int) -> None:
        api, web = Client(url, reconnect), Client(url, reconnect + 1)
        clients.extend((api, web))
        try:
            _api_flow(api, f"user{n}", rounds)
            _web_flow(web, f"user{n}", rounds)
        except Exception as exc:  # noqa: BLE001 -- reported to the caller, not a traceback
            errors.append(f"user{n}: {type(exc).__name__}: {exc}")
        finally:
            api.close()
            web.close()

    threads = [threading.Thread(target=one, args=(n,)) for n in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses: Counter = Counter()
    for c in clients:
        statuses.update(c.statuses)
    return {"requests": sum(statuses.values()), "statuses": dict(statuses),
            "unexpected": [u for c in clients for u in c.unexpected] + errors}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--users", type=int, default=4)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reconnect", type=int, default=3, help="requests per connection")
    args = p.parse_args()
    print(json.dumps(run(args.url, args.users, args.rounds, args.reconnect)))


if __name__ == "__main__":
    main()
