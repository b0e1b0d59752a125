"""Helpers the test suites share: real servers on loopback (servers), Prometheus (prometheus)."""
