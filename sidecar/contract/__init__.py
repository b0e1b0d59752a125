"""The formats two components share: the record, stream names and ids, stream entry packing,
archive lines, segments, the manifest, JSON paths. Capture, the archiver and the replayer import
these; nothing here imports another part of rewind."""
