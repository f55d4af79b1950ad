"""Every curation filter: a constructed bad input is flagged, a good input passes."""
import numpy as np
import pytest

from datagen.conventions import look_at
from datagen.curation import filters as cf

FPS = 16.0
TH = cf.CurationThresholds()


def walk(n=160, speed=1.0, yaw_rate_deg=10.0, pos_noise=0.0, yaw_fn=None, pos_fn=None, seed=0):
    """Smooth walk: forward at `speed` m/s while panning at yaw_rate_deg deg/s."""
    rng = np.random.default_rng(seed)
    out = []
    pos = np.array([0.0, 0.0, 1.5])
    for i in range(n):
        t = i / FPS
        yaw = np.radians(yaw_fn(t) if yaw_fn else yaw_rate_deg * t)
        fwd = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        p = pos_fn(t) if pos_fn else pos + np.array([speed * t, 0, 0])
        p = p + (rng.normal(0, pos_noise, 3) if pos_noise else 0)
        out.append(look_at(p, p + fwd))
    return np.stack(out)


def images(n=160, h=24, w=32, seed=0, level=120):
    rng = np.random.default_rng(seed)
    base = np.clip(level + rng.normal(0, 30, size=(h, w, 3)), 0, 255)
    rgb = np.stack([np.roll(base, i, axis=1) for i in range(n)]).astype(np.uint8)
    depth = np.broadcast_to(np.linspace(1.0, 6.0, h * w, dtype=np.float32).reshape(h, w), (n, h, w)).copy()
    mask = np.broadcast_to((np.arange(w) // 8)[None, :].repeat(h, 0), (n, h, w)).astype(np.int32).copy()
    return rgb, depth, mask


def flags_of(c2w, **kw):
    return cf.run_filters(c2w, FPS, TH, **kw)


def test_good_episode_passes_every_filter():
    rgb, depth, mask = images()
    res = cf.curate(walk(), FPS, TH, rgb=rgb, depth=depth, mask=mask)
    assert res.reasons == {}, res.reasons
    assert res.status == "kept" and res.kept.all()


@pytest.mark.parametrize("name,bad,good", [
    ("pan_speed", dict(yaw_rate_deg=200.0), dict(yaw_rate_deg=60.0)),
    ("micro_jitter", dict(pos_noise=0.004), dict(pos_noise=0.0)),
])
def test_motion_filter(name, bad, good):
    assert flags_of(walk(**bad))[name].mean() > 0.8
    assert not flags_of(walk(**good))[name].any()


def test_abrupt_rotation():
    # yaw snaps by 20 degrees in one frame at t = 5 s
    bad = walk(yaw_fn=lambda t: 20.0 if t >= 5.0 else 0.0)
    f = flags_of(bad)["abrupt_rotation"]
    assert f[80] and f.sum() <= 4
    # the same 20 degrees eased in over 2 s passes
    good = walk(yaw_fn=lambda t: 20.0 * np.clip((t - 4) / 2, 0, 1) ** 2 * (3 - 2 * np.clip((t - 4) / 2, 0, 1)))
    assert not flags_of(good)["abrupt_rotation"].any()


def test_inconsistent_velocity():
    # teleport: 2 m jump between two frames
    bad = walk(pos_fn=lambda t: np.array([t + (2.0 if t >= 5 else 0.0), 0, 1.5]))
    f = flags_of(bad)["inconsistent_velocity"]
    assert f[79] and f[80] and f.sum() <= 4
    # smooth start/stop (1 m/s^2) passes
    good = walk(pos_fn=lambda t: np.array([0.5 * min(t, 2.0) ** 2 + 2.0 * max(t - 2.0, 0), 0, 1.5]))
    assert not flags_of(good)["inconsistent_velocity"].any()


def test_oscillation():
    bad = walk(pos_fn=lambda t: np.array([0.3 * np.sin(2 * np.pi * 1.0 * t), 0, 1.5]))  # 1 Hz back-forth
    assert flags_of(bad)["oscillation"].mean() > 0.8
    # one out-and-back (a revisit) is not oscillation
    good = walk(pos_fn=lambda t: np.array([2.0 - abs(t - 5.0) * 0.4, 0, 1.5]))
    assert not flags_of(good)["oscillation"].any()


def test_near_collision():
    rgb, depth, mask = images()
    depth[50:60] = 0.1
    f = flags_of(walk(), depth=depth)["near_collision"]
    assert f[50:60].all() and f.sum() == 10


def test_exposure():
    rgb, _, _ = images()
    rgb[10:20] = 252
    rgb[30:40] = 2
    f = flags_of(walk(), rgb=rgb)
    assert f["over_exposure"][10:20].all() and f["over_exposure"].sum() == 10
    assert f["under_exposure"][30:40].all() and f["under_exposure"].sum() == 10
    dim, _, _ = images(level=60)  # a dim but properly exposed interior passes
    g = flags_of(walk(), rgb=dim)
    assert not g["under_exposure"].any() and not g["over_exposure"].any()


def test_flicker():
    rgb, _, _ = images()
    rgb[70] = np.clip(rgb[70].astype(int) + 40, 0, 255).astype(np.uint8)
    f = flags_of(walk(), rgb=rgb)["flicker"]
    assert f[70] and f.sum() == 1
    # a lasting change in brightness (walking into a darker room) is not flicker
    rgb2, _, _ = images()
    rgb2[80:] = (rgb2[80:] * 0.6).astype(np.uint8)
    assert not flags_of(walk(), rgb=rgb2)["flicker"].any()


def test_degenerate():
    rgb, depth, mask = images()
    depth[5:21] = np.inf  # looking at the sky/void for 1 s
    mask[40:60] = 2  # one surface fills the view
    rgb[100:120] = 128  # flat colour (missing textures)
    mask[70:75] = 3  # a wall filling the view for 5 frames (< 1 s) while panning past it is fine
    f = flags_of(walk(), rgb=rgb, depth=depth, mask=mask)["degenerate"]
    assert f[5:21].all() and f[40:60].all() and f[100:120].all() and f.sum() == 56
    assert not f[70:75].any()


def test_static_too_long():
    bad = walk(pos_fn=lambda t: np.array([min(t, 2.0), 0, 1.5]), yaw_fn=lambda t: 0.0)  # still from 2 s on
    f = flags_of(bad)["static_too_long"]
    first = int(np.argmax(f))
    assert f[-1] and first == pytest.approx(2 * 16 + 4 * 16 + 1, abs=1)
    short = walk(pos_fn=lambda t: np.array([min(t, 2.0) + max(t - 5.0, 0), 0, 1.5]), yaw_fn=lambda t: 0.0)
    assert not flags_of(short)["static_too_long"].any()  # a 3 s pause is fine


def test_decision_trim_and_reject():
    rgb, depth, mask = images()
    rgb[70] = np.clip(rgb[70].astype(int) + 40, 0, 255).astype(np.uint8)
    res = cf.curate(walk(), FPS, TH, rgb=rgb, depth=depth, mask=mask)
    assert res.status == "trimmed"
    assert res.removed == [{"start": 68, "end": 73, "reasons": ["flicker"]}]
    assert res.kept_segments == [[0, 68], [73, 160]]
    depth[:] = 0.1
    res = cf.curate(walk(), FPS, TH, rgb=rgb, depth=depth, mask=mask)
    assert res.status == "rejected" and res.reject_reasons[0] == "near_collision"
    assert not res.kept.any()


def test_disabled_filter_and_bad_threshold_keys():
    th = cf.CurationThresholds.from_dict({"disabled": ["pan_speed"]})
    assert not cf.run_filters(walk(yaw_rate_deg=200.0), FPS, th)["pan_speed"].any()
    with pytest.raises(ValueError, match="max_pan_speed"):
        cf.CurationThresholds.from_dict({"max_pan_speed": 3})
    with pytest.raises(ValueError, match="curation.max_pan_deg_s"):
        cf.CurationThresholds.from_dict({"max_pan_deg_s": "fast"})
