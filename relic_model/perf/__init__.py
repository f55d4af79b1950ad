"""Measurement scripts for the training path (run as modules; results under reports/)."""
