"""What every command uses: CLI argument and environment helpers, logging, the Redis client."""
