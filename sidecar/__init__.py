"""The sidecar: ``rewind-capture`` (``sidecar.capture``, with ``sidecar.redact``) and
``rewind-archive`` (``sidecar.archive``), on the formats they share with the replayer
(``sidecar.contract``) and the helpers every command uses (``sidecar.common``)."""
