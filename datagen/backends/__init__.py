"""Capture backends: one interface (``base.CaptureBackend``), an in-process embedded renderer and
an UnrealCV client. Import the concrete classes from their modules."""
from datagen.backends.base import CAPTURE_KINDS, BackendError, CaptureBackend, Frame

__all__ = ["CAPTURE_KINDS", "BackendError", "CaptureBackend", "Frame"]
