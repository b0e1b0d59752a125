"""An HTTP/1.1 keep-alive server on asyncio that logs every request it gets, for replay tests.

Each request is appended to ``--log`` as one JSON line:
``{"peer": "ip:port", "n": i, "method", "target", "version", "headers": [[name, value], ...],
"body_b64"}`` where ``n`` counts requests on that TCP connection from 0. Answers are 200 with
JSON ``{"ok": true, "target": ..., "n": ...}`` unless a rule below changes them:

  --delay S            every answer waits S seconds (concurrently: a slow, not a busy, server)
  --rate N             at most N answers a second overall (a server throttled to a known capacity;
                       requests beyond it queue, so latency grows once the offered rate passes N)
  --fail-prefix P      targets starting with P are answered 500
  --noise              add {"now": <time>, "rid": <random>} to every answer (noisy fields)
  --set-field K=V      set field K of every answer to the string V (a changed release)
  --require-header H   'Name: value' every request must carry, or it is answered 401
  --ts                 add {"ts": <ISO-8601 time of the answer>} to every answer
  --gzip               answer with Content-Encoding: gzip

    python logging_http_server.py --port 8080 --log /tmp/requests.jsonl [--delay 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import json
import os
import signal
import time


_REASONS = {200: "OK", 401: "Unauthorized"}


class Throttle:
    """Hands out answer slots no faster than ``rate`` a second (None: unlimited)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(now, self.next)
        self.next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


async def handle(reader, writer, args, log, throttle: Throttle) -> None:
    host, port = writer.get_extra_info("peername")[:2]
    peer = f"{host}:{port}"
    n = 0
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
            headers = []
            while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = h.decode("latin-1").rstrip("\r\n").partition(":")
                headers.append([name, value.strip()])
            lower = {k.lower(): v for k, v in headers}
            body = await reader.readexactly(int(lower.get("content-length", "0") or 0))
            log.write(json.dumps({
                "peer": peer, "n": n, "method": method, "target": target,
                "version": version, "headers": headers,
                "body_b64": base64.b64encode(body).decode(),
            }) + "\n")
            status = 500 if args.fail_prefix and target.startswith(args.fail_prefix) else 200
            if args.require_header and args.require_header not in [(k.lower(), v) for k, v in headers]:
                status = 401
            answer = {"ok": status == 200, "target": target, "method": method}
            for k, _, v in (f.partition("=") for f in args.set_field):
                answer[k] = v
            if args.noise:
                answer.update(now=time.time(), rid=os.urandom(6).hex())
            if args.ts:
                answer["ts"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) \
                    + f".{time.time_ns() % 10**9:09d}Z"
            if args.delay:
                await asyncio.sleep(args.delay)
            await throttle.wait()
            data = json.dumps(answer).encode()
            coding = ""
            if args.gzip:
                data, coding = gzip.compress(data), "Content-Encoding: gzip\r\n"
            writer.write(
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Internal Server Error')}\r\n"
                f"Content-Type: application/json\r\n{coding}"
                f"Content-Length: {len(data)}\r\n\r\n".encode()
                + data
            )
            await writer.drain()
            n += 1
            if lower.get("connection", "").lower() == "close":
                return
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        return
    finally:
        writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", default=os.devnull)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--fail-prefix", default=None)
    parser.add_argument("--noise", action="store_true")
    parser.add_argument("--set-field", action="append", default=[])
    parser.add_argument("--require-header", default=None)
    parser.add_argument("--ts", action="store_true")
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()
    if args.require_header:
        name, _, value = args.require_header.partition(":")
        args.require_header = (name.strip().lower(), value.strip())
    throttle = Throttle(args.rate)
    with open(args.log, "a", buffering=1 << 16) as log:
        server = await asyncio.start_server(
            lambda r, w: handle(r, w, args, log, throttle), args.host, args.port, backlog=4096)
        print(f"listening on {args.host}:{args.port}", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        async with server:
            while not stop.is_set():  # flush the log about every 0.2 s, so a reader sees it soon
                try:
                    await asyncio.wait_for(stop.wait(), 0.2)
                except TimeoutError:
                    pass
                log.flush()


if __name__ == "__main__":
    asyncio.run(main())
