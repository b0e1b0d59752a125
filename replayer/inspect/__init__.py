"""rewind-inspect: list, show, count, export and verify a range."""
