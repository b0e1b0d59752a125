"""rewind-replay: the command that reads a range, runs the engine and judges the result."""
