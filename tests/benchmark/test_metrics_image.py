"""Image-quality, no-reference and drift metrics: cross-checks against scikit-image / torchmetrics,
caps, masks, monotonic response to blur, and the LPIPS loading path (incl. missing weights)."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from benchmark.metrics import drift, image_quality as iq, noref
from datagen.filebytes import sha256_file


def _texture(seed: int, h: int = 96, w: int = 128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.random((h, w, 3)) * 255
    img = cv2.GaussianBlur(img, (0, 0), 1.2)
    yy, xx = np.mgrid[0:h, 0:w]
    img[..., 0] += 40 * np.sin(xx / 5.0)
    img[..., 2] += 40 * np.cos(yy / 7.0)
    return np.clip(img, 0, 255).astype(np.uint8)


def _noisy(img: np.ndarray, seed: int, amp: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img.astype(int) + rng.integers(-amp, amp + 1, img.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("amp", [3, 20, 60])
def test_psnr_ssim_match_scikit_image(amp):
    a = _texture(1)
    b = _noisy(a, 2, amp)
    p = iq.psnr(b, a)[0]
    assert p == pytest.approx(sk_psnr(a, b, data_range=255), abs=1e-9)
    assert iq.psnr(b, a, backend="torchmetrics")[0] == pytest.approx(p, abs=1e-4)  # float32
    ref = sk_ssim(a, b, channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5,
                  use_sample_covariance=False)
    tm = iq.ssim(b, a, backend="torchmetrics")[0]
    assert iq.ssim(b, a)[0] == pytest.approx(tm, abs=1e-4)
    # scikit-image computes the same map but averages only the interior (drops a 5-px border)
    interior = iq.ssim_maps(b, a)[0][5:-5, 5:-5].mean(dtype=np.float64)
    assert interior == pytest.approx(ref, abs=1e-4)


def test_ssim_whole_image_mean_differs_from_scikit_image_only_by_the_border():
    """The documented difference: on a small image whose border differs from its interior the
    whole-image means disagree by far more than 1e-3, the interior means agree."""
    a = _texture(12, 64, 112)
    b = a.copy()
    b[:5] = _noisy(a[:5], 13, 80)  # corrupt only the top border rows
    ref = sk_ssim(a, b, channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5,
                  use_sample_covariance=False)
    assert abs(iq.ssim(b, a)[0] - ref) > 0.01
    assert iq.ssim_maps(b, a)[0][5:-5, 5:-5].mean(dtype=np.float64) == pytest.approx(ref, abs=1e-4)


def test_identical_images_are_capped_and_perfect():
    a = _texture(3)
    assert iq.psnr(a, a)[0] == iq.PSNR_CAP_DB
    assert iq.psnr_masked(a, a, np.ones(a.shape[:2], bool)) == iq.PSNR_CAP_DB
    assert iq.ssim(a, a)[0] == pytest.approx(1.0, abs=1e-6)
    b = a.copy()
    b[0, 0, 0] ^= 1  # one grey level off in one pixel: huge but finite PSNR, still capped
    assert iq.psnr(b, a)[0] == iq.PSNR_CAP_DB


def test_batch_shapes_and_errors():
    a = np.stack([_texture(4), _texture(5)])
    b = np.stack([_noisy(a[0], 1, 10), a[1]])
    p = iq.psnr(b, a)
    assert p.shape == (2,) and p[1] == iq.PSNR_CAP_DB and p[0] < 40
    with pytest.raises(ValueError, match="shapes differ"):
        iq.psnr(a, a[:1])
    assert iq.psnr(b, a, backend="torchmetrics")[1] == iq.PSNR_CAP_DB
    with pytest.raises(ValueError, match="unknown PSNR backend"):
        iq.psnr(a, a, backend="nope")
    with pytest.raises(ValueError, match="unknown SSIM backend"):
        iq.ssim(a, a, backend="nope")


def test_masked_metrics():
    a = _texture(6)
    b = a.copy()
    b[:, 64:] = _noisy(a[:, 64:], 7, 40)
    left = np.zeros(a.shape[:2], bool)
    left[:, :60] = True
    assert iq.psnr_masked(b, a, left) == iq.PSNR_CAP_DB
    assert iq.psnr_masked(b, a, ~left) < 30
    assert iq.psnr_masked(b, a, np.ones_like(left)) == pytest.approx(iq.psnr(b, a)[0], abs=1e-6)
    assert np.isnan(iq.psnr_masked(b, a, np.zeros_like(left)))
    assert iq.ssim_masked(b, a, left) > 0.999 > iq.ssim_masked(b, a, ~left)
    assert np.isnan(iq.ssim_masked(b, a, np.zeros_like(left)))


def test_blur_lowers_psnr_ssim_sharpness_monotonically():
    a = _texture(8)
    ps, ss, sh = [], [], []
    for sigma in (0.0, 0.7, 1.5, 3.0):
        b = a if sigma == 0 else cv2.GaussianBlur(a, (0, 0), sigma)
        ps.append(iq.psnr(b, a)[0])
        ss.append(iq.ssim(b, a)[0])
        sh.append(noref.frame_stats(b)["sharpness"])
    assert np.all(np.diff(ps) < 0) and np.all(np.diff(ss) < 0) and np.all(np.diff(sh) < 0)


def test_noref_stats_definitions():
    grey = np.full((20, 30, 3), 100, np.uint8)
    s = noref.frame_stats(grey)
    assert s["luma_mean"] == pytest.approx(100) and s["luma_std"] == pytest.approx(0)
    assert s["sharpness"] == pytest.approx(0) and s["colourfulness"] == pytest.approx(0)
    assert s["saturation"] == pytest.approx(0)
    red = np.zeros((20, 30, 3), np.uint8)
    red[..., 0] = 200
    s = noref.frame_stats(red)
    assert s["saturation"] == pytest.approx(1.0)
    # Hasler-Suesstrunk on a constant colour: 0.3 * sqrt(mean(rg)^2 + mean(yb)^2) = 0.3 * sqrt(200^2 + 100^2)
    assert s["colourfulness"] == pytest.approx(0.3 * np.hypot(200, 100), rel=1e-5)
    with pytest.raises(ValueError):
        noref.frame_stats(grey[..., 0])


def test_drift_windows_slope_and_ratio():
    fps = 4.0
    n = 1 + 4 * 5  # frame 0 + five full 1-s windows
    y = 30.0 - 2.0 * np.arange(n) / fps  # falls 2 units per second
    t, curves = drift.window_curves({"psnr": y}, fps, 1.0)
    assert len(t) == 5
    slope, ratio = drift.slope_and_ratio(t, curves["psnr"])
    assert slope == pytest.approx(-2.0)
    assert ratio == pytest.approx(curves["psnr"][-1] / curves["psnr"][0])
    assert np.isnan(drift.slope_and_ratio(t[:1], curves["psnr"][:1])[0])
    assert len(drift.window_index(3, 16.0, 1.0)) == 1  # shorter than one window: one partial window


@pytest.fixture
def hub_dir(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        yield tmp_path / "hub"
    finally:
        torch.hub.set_dir(old)


def test_lpips_unavailable_without_cached_weights(hub_dir):
    m = iq.LPIPSMetric("alex")
    assert not m.available
    assert m.status.startswith("unavailable: torchvision weights alexnet-")
    assert str(hub_dir / "checkpoints") in m.status
    a = _texture(9)
    assert np.isnan(m(a, a)).all()
    assert np.isnan(m.masked(a, a, np.ones(a.shape[:2], bool)))


def _random_backbone(path) -> str:
    import torchvision

    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return sha256_file(str(path))


def test_a_file_at_the_backbone_path_is_not_enough(hub_dir):
    """A file with the right name but other weights must not make LPIPS 'available' (a number from
    wrong weights is worse than none)."""
    path = iq.lpips_backbone_file("alex")
    _random_backbone(path)
    m = iq.LPIPSMetric("alex")
    assert not m.available and "fails its SHA-256 check" in m.status and "7be5be791159472b" in m.status
    a = _texture(9)
    assert np.isnan(m(a, a)).all()
    assert iq.verify_backbone(str(hub_dir / "nope.pth")).endswith("does not exist")


def test_lpips_weights_path_overrides_the_cache(hub_dir, tmp_path, monkeypatch):
    own = tmp_path / "offline" / "alexnet.pth"
    digest = _random_backbone(own)
    monkeypatch.setenv(iq.LPIPS_WEIGHTS_ENV, str(own))
    assert iq.lpips_weights_path("alex") == str(own)
    assert not iq.get_lpips("alex").available  # random weights: hash mismatch
    monkeypatch.setitem(iq.LPIPS_BACKBONE_SHA256, "alex", digest)  # pretend these were the real weights
    m = iq.get_lpips("alex")
    assert m.available and str(own) in m.status and "SHA-256 verified" in m.status


def test_lpips_real_loading_path_with_a_verified_backbone(hub_dir, monkeypatch):
    """Exercise the real lpips loading path with a backbone file that passes the hash check (random
    weights whose digest is patched in: only the plumbing is tested here, never a reported number):
    the file's weights are the ones the network uses."""
    path = iq.lpips_backbone_file("alex")
    monkeypatch.setitem(iq.LPIPS_BACKBONE_SHA256, "alex", _random_backbone(path))
    m = iq.LPIPSMetric("alex")
    assert m.available and path in m.status
    a, b = _texture(10, 64, 64), _texture(11, 64, 64)
    same, diff = m(np.stack([a, a]), np.stack([a, b]))
    assert same == pytest.approx(0.0, abs=1e-6) and diff > 0
    sd = torch.load(path, weights_only=True)
    assert torch.equal(m._load().net.slice1[0].weight, sd["features.0.weight"])
    assert torch.equal(getattr(m._load().net.slice5, "10").weight, sd["features.10.weight"])
    half = np.zeros((64, 64), bool)
    half[:, :32] = True
    c = a.copy()
    c[:, 40:] = b[:, 40:]
    assert m.masked(c, a, ~half) > m.masked(c, a, half) >= 0
