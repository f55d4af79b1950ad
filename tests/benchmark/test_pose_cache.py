"""The opt-in pose cache returns exactly what the estimator computes, keys on every input, and is
bypassed when asked (determinism checks) or for estimators it does not cover."""
import numpy as np

from benchmark.pose_estimation import pose_cache, registry


P = np.tile(np.eye(4), (6, 1, 1))   # the poses the reference depth was rendered at
P[:, 0, 3] = np.arange(6) * 0.05


def _clip(seed=0, n=6, H=32, W=48):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (H + 8, W + 8, 3), dtype=np.uint8)
    frames = np.stack([base[4:4 + H, 4 + i // 2:4 + i // 2 + W] for i in range(n)])
    K = np.array([[40.0, 0, W / 2], [0, 40.0, H / 2], [0, 0, 1]])
    depth = np.full((n, H, W), 3.0, dtype=np.float32)
    return frames, K, depth


def test_cache_hit_equals_run_and_keys_on_inputs(tmp_path, monkeypatch):
    frames, K, depth = _clip()
    calls = []
    real = registry._run
    monkeypatch.setattr(registry, "_run", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setenv(pose_cache.ENV, str(tmp_path))
    a = registry.run_estimator("direct", frames, K, depth0=depth[0], depth_ref=depth, ref_poses=P)
    b = registry.run_estimator("direct", frames, K, depth0=depth[0], depth_ref=depth, ref_poses=P)
    assert len(calls) == 1 and len(list(tmp_path.rglob("*.npz"))) == 1
    assert np.array_equal(a.poses, b.poses) and a.step_kind == b.step_kind and a.notes == b.notes
    assert a.metric == b.metric
    # any input change is a different entry
    f2 = frames.copy()
    f2[3, 0, 0, 0] ^= 1
    registry.run_estimator("direct", f2, K, depth0=depth[0], depth_ref=depth, ref_poses=P)
    registry.run_estimator("direct", frames, K * 1.01, depth0=depth[0], depth_ref=depth, ref_poses=P)
    d2 = depth.copy()
    d2[-1] = 4.0
    registry.run_estimator("direct", frames, K, depth0=depth[0], depth_ref=d2, ref_poses=P)
    registry.run_estimator("direct", frames, K, depth0=depth[0], depth_ref=depth.astype(np.float64), ref_poses=P)
    P2 = P.copy()
    P2[-1, 1, 3] = 0.01
    registry.run_estimator("direct", frames, K, depth0=depth[0], depth_ref=depth, ref_poses=P2)
    assert len(calls) == 6 and len(list(tmp_path.rglob("*.npz"))) == 6
    # bypass: computed again, nothing new stored
    registry.run_estimator("direct", frames, K, depth0=depth[0], depth_ref=depth, ref_poses=P, use_cache=False)
    assert len(calls) == 7 and len(list(tmp_path.rglob("*.npz"))) == 6


def test_cache_off_by_default_damaged_entry_recomputed_and_reregistered_name_not_cached(tmp_path, monkeypatch):
    frames, K, depth = _clip(1)
    monkeypatch.delenv(pose_cache.ENV, raising=False)
    registry.run_estimator("direct", frames, K, depth0=depth[0], depth_ref=depth, ref_poses=P)
    assert pose_cache.cache_dir() is None
    monkeypatch.setenv(pose_cache.ENV, str(tmp_path))
    a = registry.run_estimator("direct", frames, K, depth0=depth[0], depth_ref=depth, ref_poses=P)
    (entry,) = tmp_path.rglob("*.npz")
    entry.write_bytes(b"not an npz")
    b = registry.run_estimator("direct", frames, K, depth0=depth[0], depth_ref=depth, ref_poses=P)
    assert np.array_equal(a.poses, b.poses)
    assert np.load(entry)["poses"].shape == a.poses.shape   # replaced by a good entry
    saved = dict(registry._REGISTRY), set(registry._CACHEABLE)
    try:
        registry.register_estimator("direct", lambda: (lambda fr, K: np.tile(np.eye(4), (len(fr), 1, 1))))
        c = registry.run_estimator("direct", frames, K, depth0=depth[0], depth_ref=depth, ref_poses=P)
        assert np.array_equal(c.poses, np.tile(np.eye(4), (len(frames), 1, 1)))  # not the cached estimate
    finally:
        registry._REGISTRY.clear()
        registry._REGISTRY.update(saved[0])
        registry._CACHEABLE.clear()
        registry._CACHEABLE.update(saved[1])
