"""Command-line front-ends of relic_model (``relic play``, ``relic train ...``)."""
