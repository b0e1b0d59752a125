"""Running a replay: the plan, rewrites, credentials, the Locust master and workers, the
replay user, its HTTP/1.x connection, the master-worker wire, --follow, ramp and SLOs."""
