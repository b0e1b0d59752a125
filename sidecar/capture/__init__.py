"""``rewind-capture``: every HTTP/1.x request reaching a port, with its response, into a Redis
stream (docs/capture.md).

Public: ``cli.main`` (the command), ``loop.Capture``/``CaptureConfig`` (the parts wired
together), ``probe.Probe`` (the kernel side; the only bcc import), ``publisher.Publisher``,
``metrics.CaptureMetrics`` (the ``rewind_capture_*`` metrics, which alerts and dashboards read).
Internal to the package (imported by the modules above and by tests and benchmarks only):
``events`` (the mirror of bpf/capture.h), ``ringbuf``, ``conntrack``, ``httpstream``,
``targets``, ``procfs``, ``tlslibs``. Names starting with ``_`` are internal to their module."""
