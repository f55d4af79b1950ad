"""The late level of a per-frame curve (benchmark.metrics.drift.late_frames / late_mean)."""
import numpy as np

from benchmark.metrics.drift import late_frames, late_mean


def test_late_frames_are_the_last_quarter_of_the_generated_frames():
    assert list(late_frames(9)) == [7, 8]            # generated 1..8: the last 2
    assert list(late_frames(10)) == [7, 8, 9]        # generated 1..9: ceil(2.25) = 3
    assert list(late_frames(2)) == [1]               # one generated frame
    assert list(late_frames(3, frac=0.01)) == [2]    # at least one
    assert len(late_frames(1)) == 0 and len(late_frames(0)) == 0
    assert list(late_frames(961)) == list(range(721, 961))   # a 60-s long-horizon task: the last 15 s


def test_late_mean_skips_non_finite_values_and_frame_0():
    v = np.array([60.0, 10, 10, 10, 10, 20, np.nan, 30, 40])
    assert late_mean(v) == 35.0                      # frames 7, 8
    assert np.isnan(late_mean(np.array([60.0, 5.0, np.nan])))   # its late frame (2) is undefined
    assert late_mean(np.array([60.0, 5.0, 7.0, 9.0, 11.0, np.inf])) == 11.0   # frames 4, 5; inf skipped
    assert np.isnan(late_mean(np.array([60.0, np.nan, np.nan, np.nan])))
    assert np.isnan(late_mean(np.array([60.0])))
