"""Curation report of a corpus (Markdown + PNG)."""
