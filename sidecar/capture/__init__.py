"""rewind-capture: the probe loader (the only bcc import), ring buffer, events, targets,
connection tracking, HTTP/1.x reassembly, the Redis publisher, metrics and the capture loop."""
