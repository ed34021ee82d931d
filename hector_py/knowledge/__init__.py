"""Document stores agents can search: directory sources, chunking, an SQLite FTS5 index."""
