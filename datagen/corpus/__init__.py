"""On-disk corpus: format (schema + version), atomic writer, reader API (Corpus, Episode)."""
