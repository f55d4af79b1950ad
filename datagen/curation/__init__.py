"""Automated curation: filters, captions, action balance, scene splits."""
