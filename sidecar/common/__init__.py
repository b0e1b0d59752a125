"""What every command uses; every module is public (its ``__all__``):

- ``cli_args``: ``add`` (a flag that also reads ``REWIND_<FLAG>``), ``boolean`` (the one reading
  of a yes/no value), ``size``, ``duration``, ``port``, ``port_list``, ``pid_list``,
  ``exit_codes_help``
- ``logs``: ``configure`` (structlog: JSON lines, or key=value on a terminal)
- ``redis_client``: ``connect`` (the one Redis client), ``RETRYABLE_ERRORS``, ``redact_url``

Names starting with ``_`` are internal to their module."""
