"""A stateful sample API: the server makes the ids, tokens, versions and CSRF tokens clients
carry back, so a replay without correlation meets 401, 403, 404 and 412 (issue 15).

JSON API (Authorization: Bearer <token> on all but login):
  POST   /api/login {user}            200 {token, user}: a random bearer token
  POST   /api/orders {item, qty}      201 {id (a sequence from 1001), ref (a UUID), item, qty, version,
                                      created_at}, Location: /api/orders/<id>, ETag
  GET    /api/orders/<id>             200 the order + ETag; 404 unknown, 403 another user's
  PUT    /api/orders/<id> {qty}       If-Match: <ETag> required (428), must match (412)
  DELETE /api/orders/<id>             204
  GET    /api/orders?ref=<uuid>       200 {orders: [...]}; or ?cursor=<base64url of {"ref": ..}>
Web pages (cookie session ``sid``, a CSRF token per session):
  GET  /web/login                     HTML form, hidden csrf_token; Set-Cookie: sid (anonymous)
  POST /web/login user, csrf_token    303 -> /web/notes/new, a new sid (rotated on login)
  GET  /web/notes/new                 HTML form: <meta name="csrf-token">, hidden csrf_token
  POST /web/notes text, csrf_token    303 -> /web/notes/<uuid>
  GET  /web/notes/<uuid>              200 HTML page with the note
  GET  /healthz                       200 {status: ok}

Environment: STATEFUL_API_DB (SQLite file shared by the gunicorn workers), and
STATEFUL_API_REGRESSION=1 (a bad release: GET /api/orders/<id> answers the wrong qty and
GET /web/notes/<uuid> answers 500).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import os
import secrets
import sqlite3
import tempfile
import threading
import uuid
from datetime import UTC, datetime

import orjson
from flask import Flask, Response, jsonify, redirect, request

DEFAULT_DB = os.path.join(tempfile.gettempdir(), "rewind-stateful-api.sqlite3")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, user TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (sid TEXT PRIMARY KEY, user TEXT, csrf TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY AUTOINCREMENT, ref TEXT NOT NULL,
    owner TEXT NOT NULL, item TEXT NOT NULL, qty INTEGER NOT NULL, version INTEGER NOT NULL,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notes (id TEXT PRIMARY KEY, owner TEXT NOT NULL, text TEXT NOT NULL);
"""


def create_app(db_path: str | None = None, regression: bool | None = None) -> Flask:
    """Build the app; arguments left None come from STATEFUL_API_DB / STATEFUL_API_REGRESSION."""
    db_path = db_path or os.environ.get("STATEFUL_API_DB") or DEFAULT_DB
    if regression is None:
        regression = os.environ.get("STATEFUL_API_REGRESSION", "0") not in ("", "0", "false", "no")
    app = Flask(__name__)
    conn = sqlite3.connect(db_path, timeout=15)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(_SCHEMA)
    with conn:  # order ids start at 1001, as in a database that has lived a while: a small
        # client-chosen number (a qty) never equals a server-made id by chance
        if conn.execute("SELECT 1 FROM sqlite_sequence WHERE name = 'orders'").fetchone() is None:
            conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('orders', 1000)")
    conn.close()
    local = threading.local()

    def db() -> sqlite3.Connection:
        if getattr(local, "pid", None) != os.getpid():  # one connection per thread and process
            local.conn = sqlite3.connect(db_path, timeout=15, isolation_level=None)
            local.conn.row_factory = sqlite3.Row
            local.conn.execute("PRAGMA synchronous=NORMAL")
            local.pid = os.getpid()
        return local.conn

    def fail(status: int, message: str):
        return jsonify(error=message), status

    def bearer_user() -> str | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        row = db().execute("SELECT user FROM tokens WHERE token = ?", (auth[7:],)).fetchone()
        return row["user"] if row else None

    def order_json(row) -> dict:
        return {"id": row["id"], "ref": row["ref"], "item": row["item"], "qty": row["qty"],
                "version": row["version"], "created_at": row["created_at"]}

    def etag(row) -> str:
        digest = hashlib.sha256(f"{row['id']}:{row['ref']}:{row['version']}:{row['qty']}".encode())
        return f'"{digest.hexdigest()[:20]}"'

    def own_order(oid: int, user: str):
        row = db().execute("SELECT * FROM orders WHERE id = ?", (oid,)).fetchone()
        if row is None:
            return None, fail(404, "no such order")
        if row["owner"] != user:
            return None, fail(403, "not your order")
        return row, None

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.post("/api/login")
    def api_login():
        data = request.get_json(silent=True) or {}
        user = data.get("user")
        if not isinstance(user, str) or not user:
            return fail(400, "user is required")
        token = secrets.token_urlsafe(24)
        db().execute("INSERT INTO tokens VALUES (?, ?)", (token, user))
        return jsonify(token=token, user=user)

    @app.post("/api/orders")
    def create_order():
        user = bearer_user()
        if user is None:
            return fail(401, "unauthorized")
        data = request.get_json(silent=True) or {}
        item, qty = data.get("item"), data.get("qty")
        if not isinstance(item, str) or not isinstance(qty, int):
            return fail(400, "item (text) and qty (number) are required")
        created = datetime.now(UTC).isoformat(timespec="milliseconds")
        cur = db().execute("INSERT INTO orders (ref, owner, item, qty, version, created_at) "
                           "VALUES (?, ?, ?, ?, 1, ?)", (str(uuid.uuid4()), user, item, qty, created))
        row = db().execute("SELECT * FROM orders WHERE id = ?", (cur.lastrowid,)).fetchone()
        return jsonify(order_json(row)), 201, {"Location": f"/api/orders/{row['id']}",
                                                "ETag": etag(row)}

    @app.get("/api/orders/<int:oid>")
    def get_order(oid: int):
        user = bearer_user()
        if user is None:
            return fail(401, "unauthorized")
        row, error = own_order(oid, user)
        if error:
            return error
        body = order_json(row)
        if regression:
            body["qty"] += 1
        return jsonify(body), 200, {"ETag": etag(row)}

    @app.put("/api/orders/<int:oid>")
    def update_order(oid: int):
        user = bearer_user()
        if user is None:
            return fail(401, "unauthorized")
        row, error = own_order(oid, user)
        if error:
            return error
        if "If-Match" not in request.headers:
            return fail(428, "If-Match is required")
        if request.headers["If-Match"] != etag(row):
            return fail(412, "the order changed (ETag does not match)")
        qty = (request.get_json(silent=True) or {}).get("qty")
        if not isinstance(qty, int):
            return fail(400, "qty (number) is required")
        db().execute("UPDATE orders SET qty = ?, version = version + 1 WHERE id = ?", (qty, oid))
        row = db().execute("SELECT * FROM orders WHERE id = ?", (oid,)).fetchone()
        return jsonify(order_json(row)), 200, {"ETag": etag(row)}

    @app.delete("/api/orders/<int:oid>")
    def delete_order(oid: int):
        user = bearer_user()
        if user is None:
            return fail(401, "unauthorized")
        _row, error = own_order(oid, user)
        if error:
            return error
        db().execute("DELETE FROM orders WHERE id = ?", (oid,))
        return "", 204

    @app.get("/api/orders")
    def find_orders():
        user = bearer_user()
        if user is None:
            return fail(401, "unauthorized")
        ref = request.args.get("ref")
        if "cursor" in request.args:
            try:
                raw = request.args["cursor"]
                ref = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))["ref"]
            except (binascii.Error, ValueError, KeyError, TypeError):
                return fail(400, "bad cursor")
        rows = db().execute("SELECT * FROM orders WHERE owner = ? AND ref = ?", (user, ref))
        return jsonify(orders=[order_json(r) for r in rows])

    # -- web pages: a cookie session and a CSRF token ------------------------------------------
    def session():
        sid = request.cookies.get("sid")
        row = db().execute("SELECT * FROM sessions WHERE sid = ?", (sid,)).fetchone() if sid else None
        return row

    def page(title: str, body: str, csrf: str | None = None) -> str:
        meta = f'<meta name="csrf-token" content="{csrf}">' if csrf else ""
        return (f"<!doctype html><html><head><title>{title}</title>{meta}</head>"
                f"<body><h1>{title}</h1>{body}</body></html>")

    def form(action: str, csrf: str, field: str) -> str:
        return (f'<form method="post" action="{action}">'
                f'<input type="hidden" name="csrf_token" value="{csrf}">'
                f'<input name="{field}"><button>Send</button></form>')

    def checked_csrf():
        s = session()
        if s is None or request.form.get("csrf_token") != s["csrf"]:
            return None, Response(page("Forbidden", "<p>CSRF token missing or wrong</p>"), 403)
        return s, None

    @app.get("/web/login")
    def web_login_form():
        sid, csrf = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
        db().execute("INSERT INTO sessions VALUES (?, NULL, ?)", (sid, csrf))
        resp = Response(page("Log in", form("/web/login", csrf, "user")))
        resp.set_cookie("sid", sid, httponly=True, path="/")
        return resp

    @app.post("/web/login")
    def web_login():
        s, error = checked_csrf()
        if error:
            return error
        sid, csrf = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
        db().execute("DELETE FROM sessions WHERE sid = ?", (s["sid"],))
        db().execute("INSERT INTO sessions VALUES (?, ?, ?)",
                     (sid, request.form.get("user") or "anon", csrf))
        resp = redirect("/web/notes/new", 303)
        resp.set_cookie("sid", sid, httponly=True, path="/")
        return resp

    @app.get("/web/notes/new")
    def new_note_form():
        s = session()
        if s is None or s["user"] is None:
            return redirect("/web/login", 303)
        return page("New note", form("/web/notes", s["csrf"], "text"), csrf=s["csrf"])

    @app.post("/web/notes")
    def create_note():
        s, error = checked_csrf()
        if error:
            return error
        nid = str(uuid.uuid4())
        db().execute("INSERT INTO notes VALUES (?, ?, ?)", (nid, s["user"], request.form.get("text", "")))
        return redirect(f"/web/notes/{nid}", 303)

    @app.get("/web/notes/<nid>")
    def show_note(nid: str):
        s = session()
        if s is None or s["user"] is None:
            return redirect("/web/login", 303)
        if regression:
            raise RuntimeError("regression: notes page broken in this release")
        row = db().execute("SELECT * FROM notes WHERE id = ? AND owner = ?", (nid, s["user"])).fetchone()
        if row is None:
            return Response(page("Not found", "<p>no such note</p>"), 404)
        return page("Note", f"<p>{html.escape(row['text'])}</p>")

    return app


def __getattr__(name: str):
    """Build the module-level `app` (for gunicorn) on first use, so importing touches no file."""
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
