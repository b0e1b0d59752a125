"""Running a replay: the plan, rewrites, credentials, the Locust master (``master``, with
``local_workers`` and ``progress``) and workers (``worker``, ``state``, ``user``), the pacing of a
worker's share (``pacing``, ``live`` for --follow) and its HTTP/1.x connection (``http1``), the
master-worker wire (``wire``), --follow (``follow``), ramp and SLOs."""
