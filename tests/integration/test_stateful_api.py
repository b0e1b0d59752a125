"""The stateful sample API and its traffic: the flows succeed on a fresh instance, the
regressed build fails its notes pages, and values from another instance are refused (what a
replay without correlation meets)."""

from __future__ import annotations

import requests

from ci.stateful_api.traffic import run
from tests.support.servers import stateful_api


def test_traffic_runs_clean_and_regression_shows():
    """3 users x 2 rounds: every answer as expected; on the regressed build the notes pages
    answer 500 and nothing else changes status."""
    with stateful_api() as srv:
        good = run(srv.url, users=3, rounds=2)
    assert good["unexpected"] == [] and good["requests"] == 3 * (1 + 2 * 5 + 1 + 2 + 3 * 2)
    with stateful_api(regression=True) as srv:
        bad = run(srv.url, users=3, rounds=2)
    assert bad["statuses"].get(500) == 6
    assert all("/web/notes/" in u and ": 500" in u for u in bad["unexpected"])


def test_values_of_another_instance_are_refused():
    """A token, an order id, an ETag and a session+CSRF pair made by one instance are refused
    by a fresh one: 401, 404, 412 and 403."""
    with stateful_api() as a:
        token = requests.post(a.url + "/api/login", json={"user": "u"}).json()["token"]
        r = requests.post(a.url + "/api/orders", json={"item": "x", "qty": 1},
                          headers={"Authorization": f"Bearer {token}"})
        etag, location = r.headers["ETag"], r.headers["Location"]
        page = requests.get(a.url + "/web/login")
        sid, csrf = page.cookies["sid"], page.text.split('value="')[1].split('"')[0]
    with stateful_api() as b:
        assert requests.get(b.url + location, headers={"Authorization": f"Bearer {token}"}
                            ).status_code == 401
        fresh = requests.post(b.url + "/api/login", json={"user": "u"}).json()["token"]
        auth = {"Authorization": f"Bearer {fresh}"}
        assert requests.get(b.url + "/api/orders/999", headers=auth).status_code == 404
        made = requests.post(b.url + "/api/orders", json={"item": "x", "qty": 1}, headers=auth)
        assert requests.put(b.url + made.headers["Location"], json={"qty": 2},
                            headers={**auth, "If-Match": etag}).status_code == 412
        assert requests.post(b.url + "/web/login", data={"csrf_token": csrf, "user": "u"},
                             cookies={"sid": sid}, allow_redirects=False).status_code == 403
