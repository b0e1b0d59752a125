"""User-behaviour service: users react (love, like, angry, cry) to articles.

Endpoints (all JSON; errors are {"error": ..., "field": ...} with a 4xx status):
  POST /reactions {user, article, reaction}   201 the stored reaction with id and created_at
  GET  /users/<user>/reactions                200 {user, reactions}, newest first;
                                              ?reaction=<kind>, ?limit=1..1000 (default 100)
  GET  /articles/<article>/reactions/summary  200 {article, counts: {kind: n}, total}
  GET  /healthz                               200 {status: "ok"}
  ANY  /echo, /echo/<path>                    200 {method, path, query, body_len, body_sha256,
                                              headers: [[name, value], ...]}

Environment: DEMO_API_DB (SQLite file, shared by every gunicorn worker; default a fixed file in
the temp folder), DEMO_API_REGRESSION=1 (every request ~30 ms slower and the summary answers
500: a "bad release" for replay to catch).
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import tempfile
import threading
import time
from datetime import UTC, datetime

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

REACTIONS = ("love", "like", "angry", "cry")
REGRESSION_DELAY_S = 0.030
_ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
DEFAULT_DB = os.path.join(tempfile.gettempdir(), "rewind-demo-api.sqlite3")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reactions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user       TEXT NOT NULL,
    article    TEXT NOT NULL,
    reaction   TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reactions_user ON reactions (user);
CREATE INDEX IF NOT EXISTS reactions_article ON reactions (article);
"""


class ApiError(Exception):
    """A client error answered as {"error": message, "field": field} with `status`."""

    def __init__(self, message: str, field: str | None = None, status: int = 400):
        super().__init__(message)
        self.message, self.field, self.status = message, field, status


def create_app(db_path: str | None = None, regression: bool | None = None) -> Flask:
    """Build the app; arguments left as None come from DEMO_API_DB / DEMO_API_REGRESSION."""
    db_path = db_path or os.environ.get("DEMO_API_DB") or DEFAULT_DB
    if regression is None:
        regression = os.environ.get("DEMO_API_REGRESSION", "0") not in ("", "0", "false", "no")

    app = Flask(__name__)
    app.config.update(DB_PATH=db_path, REGRESSION=regression)
    _init_db(db_path)

    local = threading.local()

    def db() -> sqlite3.Connection:
        # One connection per thread and process, opened after gunicorn forks: safe across
        # workers and threads. Kept open, because closing the last connection to a WAL
        # database checkpoints and fsyncs. WAL lets readers run beside the writer; the
        # timeout makes concurrent writers wait for the lock instead of failing.
        if getattr(local, "pid", None) != os.getpid():
            local.conn = sqlite3.connect(db_path, timeout=15)
            local.conn.row_factory = sqlite3.Row
            local.conn.execute("PRAGMA synchronous=NORMAL")  # WAL: no fsync per commit
            local.pid = os.getpid()
        return local.conn

    @app.before_request
    def _slow_release():
        if app.config["REGRESSION"]:
            time.sleep(REGRESSION_DELAY_S)

    @app.errorhandler(ApiError)
    def _api_error(err: ApiError):
        body = {"error": err.message}
        if err.field:
            body["field"] = err.field
        return jsonify(body), err.status

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        return jsonify(error=err.description, status=err.code), err.code

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.post("/reactions")
    def add_reaction():
        data = request.get_json(force=True, silent=True)
        if not isinstance(data, dict):
            raise ApiError("body must be a JSON object with user, article and reaction")
        user = _name_field(data, "user")
        article = _name_field(data, "article")
        reaction = _reaction(data.get("reaction"), "reaction")
        created_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        conn = db()
        with conn:
            cur = conn.execute(
                "INSERT INTO reactions (user, article, reaction, created_at) VALUES (?, ?, ?, ?)",
                (user, article, reaction, created_at),
            )
        stored = {"id": cur.lastrowid, "user": user, "article": article,
                  "reaction": reaction, "created_at": created_at}
        return jsonify(stored), 201, {"Location": f"/users/{user}/reactions"}

    @app.get("/users/<user>/reactions")
    def user_reactions(user: str):
        _check_name(user, "user")
        kind = request.args.get("reaction")
        limit = request.args.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            raise ApiError("limit must be a whole number from 1 to 1000", "limit")
        sql, args = "SELECT * FROM reactions WHERE user = ?", [user]
        if kind is not None:
            sql += " AND reaction = ?"
            args.append(_reaction(kind, "reaction"))
        rows = db().execute(sql + " ORDER BY id DESC LIMIT ?", [*args, int(limit)]).fetchall()
        return jsonify(user=user, reactions=[dict(r) for r in rows])

    @app.get("/articles/<article>/reactions/summary")
    def article_summary(article: str):
        _check_name(article, "article")
        if app.config["REGRESSION"]:
            raise RuntimeError("regression: summary query broken in this release")
        rows = db().execute(
            "SELECT reaction, COUNT(*) AS n FROM reactions WHERE article = ? GROUP BY reaction",
            (article,),
        ).fetchall()
        counts = {kind: 0 for kind in REACTIONS}
        counts.update({r["reaction"]: r["n"] for r in rows})
        return jsonify(article=article, counts=counts, total=sum(counts.values()))

    @app.route("/echo", methods=_ANY_METHOD)
    @app.route("/echo/<path:_rest>", methods=_ANY_METHOD)
    def echo(_rest: str = ""):
        body = request.get_data(cache=False)
        return jsonify(
            method=request.method,
            path=request.path,
            query=request.query_string.decode("latin-1"),
            body_len=len(body),
            body_sha256=hashlib.sha256(body).hexdigest(),
            headers=[[k, v] for k, v in request.headers.items()],
        )

    return app


def _init_db(path: str) -> None:
    conn = sqlite3.connect(path, timeout=15)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SCHEMA)
    finally:
        conn.close()


def _check_name(value, field: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ApiError(f"{field} must be 1-64 characters of letters, digits, '_', '.' or '-'",
                       field)
    return value


def _name_field(data: dict, field: str) -> str:
    if field not in data:
        raise ApiError(f"{field} is required", field)
    return _check_name(data[field], field)


def _reaction(value, field: str) -> str:
    if value not in REACTIONS:
        raise ApiError(f"{field} must be one of {', '.join(REACTIONS)}", field)
    return value


def __getattr__(name: str):
    """Build the module-level `app` (for gunicorn) on first use, so importing touches no file."""
    if name == "app":
        globals()["app"] = create_app()
        return globals()["app"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
