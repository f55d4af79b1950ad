"""Corpus capture: config, episode capture, multi-process / multi-endpoint build pipeline, CLI."""
