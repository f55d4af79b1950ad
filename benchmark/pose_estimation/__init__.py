"""Camera-trajectory estimation from video frames (default OpenCV two-view estimator, TUM I/O,
registry of pluggable estimators)."""
