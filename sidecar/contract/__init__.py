"""The formats two components share; capture, the archiver and the replayer import these, and
nothing here imports another part of rewind. Every module is public (its ``__all__``):

- ``record``: ``Record`` (one request and its response), ``RecordError``, ``SCHEMA_VERSION``
- ``streams``: ``stream_key`` (``rewind:{NAME}:http``), ``ARCHIVER_GROUP``
- ``stream_ids``: ``StreamId`` and its parsing, formatting and neighbours
- ``xadd``: ``XaddPacker``, the publisher's XADD bytes
- ``archive_lines``: a record as an archive line and back (``entry_line``, ``parse_line`` ...)
- ``segments``, ``manifest``: the archive's files (``SegmentWriter``, ``Manifest`` ...)
- ``archive_progress``: ``group_state``, how far the archiver's group got
- ``jsonpath``: ``parse_path``, the JSON paths of redaction rules and ``--ignore``
- ``content_coding``: ``decoded``, a gzip/deflate/br body as its content
- ``tokens``: ``TOKEN_RE``, the masked-token format
- ``exit_codes``: one ``IntEnum`` per command

Names starting with ``_`` are internal to their module."""
