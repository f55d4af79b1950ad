"""Corpus build configs (YAML): default_corpus.yaml (the default corpus), tiny_corpus.yaml (smoke runs)."""
