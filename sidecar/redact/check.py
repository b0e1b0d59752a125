"""``rewind-capture --redact-check POLICY [--redact-sample FILE.jsonl] [--redact-key-file KEY]``:
check a policy and print what it does to a sample record (or to each record of an exported
file), as HTTP text before and after. Exit 0, or 2 (``CaptureExit.USAGE``) with
``FILE:LINE: what is wrong``."""

from __future__ import annotations

import argparse
import copy
import sys

from sidecar.contract.exit_codes import CaptureExit
from sidecar.contract.record import Record, RecordError
from sidecar.redact.apply import Redactor
from sidecar.redact.metrics import RULE_KINDS
from sidecar.redact.setup import RedactConfigError, describe, load_settings

__all__ = ["main", "sample_record"]

SHOWN = 2048  # body bytes printed per record


def sample_record() -> Record:
    """A request carrying a secret in every place a policy can reach."""
    body = (b'{"user": {"email": "jane@example.org", "name": "Jane"}, '
            b'"items": [{"sku": "A1", "card": "4111 1111 1111 1111"}], "note": "call jane@example.org"}')
    resp = b'{"id": 42, "token": "s3cr3t-session-token"}'
    return Record(
        ts_ns=0, conn="sample:1:3:0", seq=0, client="10.0.0.1:50000", method="POST",
        target="/api/orders?token=abc123&page=2", version="1.1",
        headers=[("Host", "api.example"), ("Authorization", "Bearer eyJhbGciOi.secret"),
                 ("Cookie", "session=9f8e7d; theme=dark"), ("X-Api-Key", "key-123"),
                 ("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        body=body, body_len=len(body), status=201,
        resp_headers=[("Content-Type", "application/json"),
                      ("Set-Cookie", "session=9f8e7d; Path=/; HttpOnly"),
                      ("Content-Length", str(len(resp)))],
        resp_body=resp, resp_body_len=len(resp))


def show(r: Record) -> str:
    head = r.request_bytes()[: len(r.request_bytes()) - len(r.body)].decode("latin-1")
    lines = [head + _body(r.body, r.body_len, r.truncated)]
    resp = "".join(f"{k}: {v}\r\n" for k, v in r.resp_headers)
    lines.append(f"HTTP/{r.version} {r.status}\r\n{resp}\r\n" + _body(r.resp_body, r.resp_body_len,
                                                                      r.resp_truncated))
    return "\n".join(lines).replace("\r\n", "\n")


def _body(body: bytes, real: int, cut: bool) -> str:
    text = body[:SHOWN].decode("utf-8", "replace")
    note = f"  [{len(body)} bytes stored, body_len {real}{', truncated' if cut else ''}]"
    return (text + "\n" if text else "") + note + "\n"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rewind-capture --redact-check",
                                description=__doc__.splitlines()[0])
    p.add_argument("--redact-check", metavar="POLICY", required=True)
    p.add_argument("--redact-sample", metavar="FILE", default=None,
                   help="exported records (JSON Lines, Record.to_json) instead of the built-in one")
    p.add_argument("--redact-key-file", default=None)
    args, _ = p.parse_known_args(argv)  # other capture flags may be present: ignored here
    try:
        settings = load_settings(args.redact_check, args.redact_key_file)
    except RedactConfigError as exc:
        print(f"rewind-capture: {exc}", file=sys.stderr)
        return CaptureExit.USAGE
    records = [sample_record()]
    if args.redact_sample:
        try:
            with open(args.redact_sample, "rb") as f:
                records = [Record.from_json(line) for line in f if line.strip()]
        except (OSError, RecordError) as exc:
            print(f"rewind-capture: --redact-sample: {exc}", file=sys.stderr)
            return CaptureExit.USAGE
    policy = settings.policy
    redactor = Redactor(policy, settings.key)
    print(f"policy {policy.source}: " + ", ".join(
        f"{k}={v}" for k, v in describe(policy, settings.key_origin).items() if k != "source"))
    for r in records:
        before = copy.deepcopy(r)
        after = redactor.apply(r)
        print("=" * 30 + " before")
        print(show(before))
        print("=" * 30 + " after")
        print(show(after) if after is not None else "(request dropped by a drop_request rule)\n")
    read = redactor.m.registry.get_sample_value
    fields = {kind: n for kind in RULE_KINDS
              if (n := read("rewind_capture_redacted_fields_total", {"rule_kind": kind}))}
    print(f"redacted: {fields or 'nothing'}; dropped requests: "
          f"{int(read('rewind_capture_policy_dropped_requests_total'))}")
    return CaptureExit.OK
