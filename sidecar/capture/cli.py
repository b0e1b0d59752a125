"""``rewind-capture``: capture every HTTP request reaching a port into a Redis stream."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import socket
import sys
import threading

import structlog

from sidecar.common import cli_args as a
from sidecar.common import logs
from sidecar.contract.exit_codes import CaptureExit

EXIT_HELP = {
    CaptureExit.OK: "done (--duration reached, or SIGTERM/SIGINT)",
    CaptureExit.FAILURE: "other failure",
    CaptureExit.USAGE: "bad arguments (a flag, the redaction policy or key file, the metrics port "
                       "in use)",
    CaptureExit.PROBE: "the probe could not be loaded",
    CaptureExit.NATIVE: "the native extension is not built (pip install . with gcc and python3-dev)",
}

EXAMPLES = """\
examples:
  # everything reaching port 8080, into rewind:{orders}:http on a local Redis
  rewind-capture --port 8080 --redis redis://127.0.0.1:6379/0 --stream orders

  # one process only, stop after 10 minutes, metrics on :9102
  rewind-capture --port 8080 --stream orders --pid 4242 --duration 10m --metrics-port 9102

  # HTTPS too: plaintext from the servers' libssl (uprobes), plain HTTP on 8080 and TLS on 8443
  rewind-capture --port 8080,8443 --tls --stream orders

  # inside a pod (flags can all come from the environment)
  REWIND_PORT=8080 REWIND_STREAM=orders REWIND_REDIS=redis://redis:6379/0 rewind-capture

  # redact with a policy and a shared HMAC key; try a policy on a sample record first
  rewind-capture --port 8080 --stream orders --redact-policy redact.yaml --redact-key-file /keys/hmac
  rewind-capture --redact-check redact.yaml

""" + a.exit_codes_help(EXIT_HELP)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rewind-capture",
        description="Capture every HTTP/1.x request (with its response) that reaches any process "
        "listening on a TCP port, with an eBPF probe, and publish one record per request to a "
        "Redis stream rewind:{NAME}:http. Needs root (or CAP_BPF + CAP_PERFMON).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add(p, "--port", type=a.port_list, required=True,
          help="TCP port the API listens on (several: 8080,8443)")
    a.add(p, "--redis", default="redis://127.0.0.1:6379/0", help="Redis URL")
    a.add(p, "--stream", required=True, help="stream name; records go to rewind:{NAME}:http")
    a.add(p, "--pid", type=a.pid_list, default=None,
          help="only these processes (comma-separated ids)")
    a.add(p, "--cgroup", default=None,
          help="only processes in this cgroup (v2 path as in /proc/PID/cgroup, e.g. /kubepods/pod1)")
    a.add(p, "--max-body", type=a.size, default="1MiB",
          help="bytes stored per request or response body; longer ones are cut and flagged")
    a.add(p, "--max-header-bytes", type=a.size, default="64KiB",
          help="a header block longer than this is a parse error")
    a.add(p, "--duration", type=a.duration, default=None,
          help="stop after this long (30s, 10m, 2h); default: until SIGTERM/SIGINT")
    a.add(p, "--metrics-port", type=a.port, default=9102,
          help="serve Prometheus metrics on this port (0: off)")
    a.add(p, "--metrics-addr", default="0.0.0.0", help="address for the metrics server")
    a.add(p, "--maxlen", type=int, default=1_000_000,
          help="approximate cap on the stream's length (XADD MAXLEN ~)")
    a.add(p, "--queue-size", type=int, default=100_000,
          help="records held in memory while Redis is unreachable; beyond it they are dropped "
          "and counted")
    a.add(p, "--idle-timeout", type=a.duration, default="300s",
          help="forget the parsing state of a connection idle this long")
    a.add(p, "--node", default=os.environ.get("NODE_NAME") or socket.gethostname(),
          help="name that makes connection ids unique across sidecars (node or pod name)")
    a.add(p, "--ringbuf-size", type=a.size, default="64MiB",
          help="kernel ring buffer size (power of two, at least 4KiB)")
    a.add(p, "--max-conns", type=int, default=65536, help="connections tracked in the kernel")
    a.add(p, "--tls", action="store_true", default=False,
          help="also capture HTTPS: uprobes on SSL_read/SSL_write of the libssl the target "
          "processes map give the plaintext (OpenSSL-compatible libssl only)")
    a.add(p, "--redact-policy", default=None,
          help="redaction policy (YAML, see docs/capture.md); without one the values of "
          "Authorization, Cookie, Set-Cookie, Proxy-Authorization and X-Api-Key are masked")
    a.add(p, "--redact-key-file", default=None,
          help="HMAC key for masked tokens (>= 16 bytes, e.g. a mounted Secret); without one a "
          "random key per process is used and tokens differ between sidecars")
    p.add_argument("--redact-check", metavar="POLICY", default=None,
                   help="check POLICY and show what it does to a sample record (or to the records "
                   "of --redact-sample FILE.jsonl), then exit; needs no other flag")
    logs.add_arguments(p)
    p.add_argument("--print-bpf", action="store_true", help=argparse.SUPPRESS)
    return p


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)  # REWIND_TLS is read in cli_args.add, with cli_args.boolean
    pages = args.ringbuf_size // 4096
    if args.ringbuf_size < 4096 or pages & (pages - 1):
        p.error(f"--ringbuf-size must be a power of two of at least 4KiB, got {args.ringbuf_size}")
    if args.max_body < 0 or args.maxlen <= 0 or args.queue_size <= 0 or args.max_conns <= 0:
        p.error("--max-body, --maxlen, --queue-size and --max-conns must be positive")
    if args.pid:
        missing = sorted(pid for pid in args.pid if not os.path.exists(f"/proc/{pid}"))
        if missing:
            p.error(f"--pid: no such process: {', '.join(map(str, missing))}")
    from sidecar.contract.streams import stream_key
    try:
        stream_key(args.stream)
    except ValueError as exc:
        p.error(f"--stream: {exc}")
    return args


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    if any(x == "--redact-check" or x.startswith("--redact-check=") for x in raw):
        from sidecar.redact.check import main as redact_check
        return redact_check(raw)
    args = parse(argv)
    from sidecar.redact.setup import RedactConfigError, load_settings
    try:  # a malformed policy or key stops here, before the probe is loaded
        redact = load_settings(args.redact_policy, args.redact_key_file)
    except RedactConfigError as exc:
        print(f"rewind-capture: {exc}", file=sys.stderr)  # one line, exit 2
        return CaptureExit.USAGE
    logs.configure_from(args.log_level, args.log_format)
    log = structlog.get_logger("rewind.capture")

    from sidecar.capture.native import NativeUnavailable, load
    try:  # the hot path is native only: no slow path to fall back on
        load()
    except NativeUnavailable as exc:
        log.error("capture.native_missing", error=str(exc))
        return CaptureExit.NATIVE

    from sidecar.capture.loop import Capture, CaptureConfig
    from sidecar.capture.metrics import CaptureMetrics
    from sidecar.capture.probe import Probe, ProbeError
    from sidecar.capture.procfs import ProcFS
    from sidecar.capture.publisher import Publisher
    from sidecar.common.redis_client import connect, redact_url
    from sidecar.capture.targets import TargetFinder

    # Process ids are the ones of the sidecar's own PID namespace throughout (/proc, --pid, the
    # probe): the host's, or a pod's with shareProcessNamespace.
    procfs = ProcFS()
    pidns = procfs.pid_namespace()

    def probe_factory(handler):
        return Probe(handler, max_conns=args.max_conns, ringbuf_pages=args.ringbuf_size // 4096,
                     tls=args.tls, pidns=pidns)

    if args.print_bpf:
        print(probe_factory(lambda raw: None).compiled_source())
        return CaptureExit.OK

    try:
        client = connect(args.redis)
    except ValueError as exc:
        print(f"rewind-capture: --redis: {exc}", file=sys.stderr)
        return CaptureExit.USAGE

    metrics = CaptureMetrics()
    publisher = Publisher(client, args.stream, metrics=metrics, maxlen=args.maxlen,
                          queue_size=args.queue_size, log=log)
    from sidecar.redact.setup import RedactingPublisher, log_start
    log_start(log, redact.policy, redact.key_origin)
    redacting = RedactingPublisher(publisher, redact.policy, redact.key, registry=metrics.registry,
                                   log=log)
    capture = Capture(
        CaptureConfig(port=args.port, node=args.node, max_body=args.max_body,
                      max_header_bytes=args.max_header_bytes, idle_timeout_s=args.idle_timeout,
                      max_conns=args.max_conns, ringbuf_pages=args.ringbuf_size // 4096,
                      tls=args.tls),
        finder=TargetFinder(args.port, pids=args.pid, cgroup=args.cgroup, pidns=pidns),
        publisher=redacting,  # records are redacted before they are queued for XADD
        metrics=metrics,
        probe_factory=probe_factory,
        procfs=procfs,
        log=log,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    try:
        capture.start()
    except ProbeError as exc:
        log.error("capture.probe_failed", error=str(exc))
        return CaptureExit.PROBE
    if args.metrics_port:
        try:
            metrics.serve(args.metrics_port, args.metrics_addr)
        except OSError as exc:
            log.error("capture.metrics_port", port=args.metrics_port, error=str(exc))
            capture.close()
            return CaptureExit.USAGE
    # Everything built so far lives as long as the process: keep it out of the cyclic garbage
    # collector's full passes, which otherwise rescan it while records pile up in the queue
    # (about 5 us of CPU per request at full load, ci/bench/sidecar_cpu.py).
    gc.freeze()
    publisher.start()
    log.info("capture.started", stream=args.stream, redis=redact_url(args.redis),
             metrics_port=args.metrics_port or None, duration_s=args.duration)
    try:
        capture.run(stop, args.duration)
        capture.finish()
    finally:
        publisher.stop(timeout=10.0)
        capture.close()
    read = metrics.registry.get_sample_value
    log.info("capture.stopped", requests=int(read("rewind_capture_requests_total")),
             published=int(read("rewind_capture_published_records_total")))
    return CaptureExit.OK




if __name__ == "__main__":
    sys.exit(main())
