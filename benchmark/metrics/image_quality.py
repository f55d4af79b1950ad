"""Full-reference image quality: PSNR, SSIM and LPIPS, per frame, optionally restricted to a mask.

Inputs are RGB uint8 images, shape (H, W, 3) or batches (N, H, W, 3), values 0..255.

PSNR (dB)
    ``PSNR = 10 * log10(255**2 / MSE)`` with ``MSE`` the mean squared error over all pixels and all
    three channels of one frame (data_range = 255), torchmetrics' ``peak_signal_noise_ratio(...,
    data_range=255, reduction="none", dim=(1, 2, 3))``. Two backends: ``"opencv"`` (default, exact
    integer squared-error sum, ~10x cheaper) and ``"torchmetrics"`` (float32); tests check both
    against each other and scikit-image. Identical images (MSE = 0) would give +inf: every PSNR is
    capped at ``PSNR_CAP_DB`` = 60 dB (60 dB is an RMS error of 0.26 grey levels, i.e. below uint8
    quantisation), so means stay finite and "identical" scores exactly 60. Means over frames are
    means of per-frame PSNRs. Masked PSNR uses the MSE over the masked pixels only (all channels),
    same cap; NaN when the mask is empty.

SSIM (0..1, 1 = identical)
    Wang et al. 2004 SSIM exactly as torchmetrics' ``structural_similarity_index_measure`` computes
    it: Gaussian window sigma = 1.5, 11 x 11 taps, K1 = 0.01, K2 = 0.03, data_range = 255
    (C1 = (0.01*255)**2, C2 = (0.03*255)**2), population statistics, per RGB channel on float
    images in 0..255, the image reflect-padded (edge pixel not repeated) by the window radius so the
    SSIM map covers every pixel, and the map averaged over channels and ALL pixels. (scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`` is the
    same except that it drops a 5-pixel border before averaging; the two agree to ~1e-3 on small
    images and closer on large ones, which the tests check.) Two backends compute the same number:
    ``"separable"`` (default: OpenCV separable Gaussian filtering, float32, several times faster on
    CPU) and ``"torchmetrics"``; the tests check they agree to 1e-4. Masked SSIM averages the
    channel-mean SSIM map over the masked pixels.

LPIPS (>= 0, 0 = identical, lower is better)
    Zhang et al. 2018 LPIPS v0.1 from the ``lpips`` package, AlexNet backbone by default (``vgg``
    selectable), inputs scaled to [-1, 1]. The package ships the linear-layer weights, but the
    backbone's ImageNet weights come from torchvision's cache
    (``<torch.hub.get_dir()>/checkpoints/<file>``). They are never downloaded here: when the file is
    absent, :class:`LPIPSMetric` is unavailable, its ``status`` says
    ``"unavailable: torchvision weights <file> not in <dir>"`` and it returns NaN. Masked LPIPS
    averages the spatial LPIPS map (``spatial=True``, upsampled to the image size) over the mask.
"""
from __future__ import annotations

import os

import cv2
import numpy as np
import torch

PSNR_CAP_DB = 60.0
DATA_RANGE = 255.0
SSIM_SIGMA = 1.5
SSIM_TAPS = 11  # int(3.5 * sigma + 0.5) * 2 + 1, as torchmetrics and scikit-image derive it
SSIM_K1, SSIM_K2 = 0.01, 0.03
_BATCH = 16  # frames per torch batch (memory bound: 16 x 480 x 832 x 3 float32 = 77 MB)


def _as_batch(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected RGB images (H,W,3) or (N,H,W,3), got shape {x.shape}")
    return x


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_batch(a), _as_batch(b)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    return a, b


def _to_torch(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()


# ----------------------------------------------------------------------------------------- PSNR
def psnr(pred: np.ndarray, target: np.ndarray, backend: str = "opencv") -> np.ndarray:
    """Per-frame PSNR in dB (data_range 255), capped at PSNR_CAP_DB. Shape (N,).

    backend: "opencv" (default: exact integer sum of squared differences with ``cv2.norm``, then the
    formula in double precision) or "torchmetrics" (``peak_signal_noise_ratio`` in float32); the
    tests check they agree (to float32 precision) and match scikit-image.
    """
    a, b = _check_pair(pred, target)
    out = np.empty(a.shape[0], dtype=np.float64)
    if backend == "opencv":
        n = a[0].size
        for i in range(a.shape[0]):
            mse = cv2.norm(a[i], b[i], cv2.NORM_L2SQR) / n
            out[i] = np.inf if mse == 0 else 10.0 * np.log10(DATA_RANGE ** 2 / mse)
    elif backend == "torchmetrics":
        from torchmetrics.functional.image import peak_signal_noise_ratio

        for s in range(0, a.shape[0], _BATCH):
            # the reduction covers all of (H, W, C), so channel-last tensors avoid a transposing copy
            v = peak_signal_noise_ratio(torch.from_numpy(a[s:s + _BATCH]).float(),
                                        torch.from_numpy(b[s:s + _BATCH]).float(),
                                        data_range=DATA_RANGE, reduction="none", dim=(1, 2, 3))
            out[s:s + _BATCH] = v.double().numpy()
    else:
        raise ValueError(f"unknown PSNR backend {backend!r}; use 'opencv' or 'torchmetrics'")
    out[~np.isfinite(out)] = PSNR_CAP_DB  # MSE == 0 gives +inf
    return np.minimum(out, PSNR_CAP_DB)


def psnr_masked(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (dB, capped) over the pixels where ``mask`` (H,W bool) is true; NaN if the mask is empty."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return float("nan")
    d = pred[m].astype(np.float64) - target[m].astype(np.float64)
    mse = float(np.mean(d * d))
    if mse == 0.0:
        return PSNR_CAP_DB
    return float(min(PSNR_CAP_DB, 10.0 * np.log10(DATA_RANGE ** 2 / mse)))


# ----------------------------------------------------------------------------------------- SSIM
def _blur(img: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(img, (SSIM_TAPS, SSIM_TAPS), SSIM_SIGMA, sigmaY=SSIM_SIGMA,
                            borderType=cv2.BORDER_REFLECT_101)


def _ssim_map_separable(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Channel-mean SSIM map (H,W) float32 of two (H,W,3) uint8 images; border pixels included."""
    x = a.astype(np.float32)
    y = b.astype(np.float32)
    mu_x, mu_y = _blur(x), _blur(y)
    mxx, myy, mxy = cv2.multiply(mu_x, mu_x), cv2.multiply(mu_y, mu_y), cv2.multiply(mu_x, mu_y)
    sxx = np.maximum(cv2.subtract(_blur(cv2.multiply(x, x)), mxx), 0.0)
    syy = np.maximum(cv2.subtract(_blur(cv2.multiply(y, y)), myy), 0.0)
    sxy = cv2.subtract(_blur(cv2.multiply(x, y)), mxy)
    c1 = np.float32((SSIM_K1 * DATA_RANGE) ** 2)
    c2 = np.float32((SSIM_K2 * DATA_RANGE) ** 2)
    num = cv2.multiply(2.0 * mxy + c1, 2.0 * sxy + c2)
    den = cv2.multiply(mxx + myy + c1, sxx + syy + c2)
    m = cv2.divide(num, den)
    return cv2.transform(m, np.full((1, 3), 1.0 / 3.0, np.float32))


def ssim_maps(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Channel-mean SSIM maps (N,H,W) float32 (separable backend, reflect-padded borders)."""
    a, b = _check_pair(pred, target)
    return np.stack([_ssim_map_separable(a[i], b[i]) for i in range(a.shape[0])])


def ssim(pred: np.ndarray, target: np.ndarray, backend: str = "separable", workers: int = 1) -> np.ndarray:
    """Per-frame SSIM (definition in the module docstring). Shape (N,).

    backend: "separable" (OpenCV, default) or "torchmetrics"; both compute the same quantity.
    workers: threads for the separable backend (OpenCV releases the GIL).
    """
    a, b = _check_pair(pred, target)
    if backend == "separable":
        def one(i):
            return _ssim_map_separable(a[i], b[i]).mean(dtype=np.float64)
        if workers > 1 and a.shape[0] > 1:
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(max_workers=workers) as ex:
                return np.array(list(ex.map(one, range(a.shape[0]))))
        return np.array([one(i) for i in range(a.shape[0])])
    if backend == "torchmetrics":
        from torchmetrics.functional.image import structural_similarity_index_measure

        out = np.empty(a.shape[0], dtype=np.float64)
        for s in range(0, a.shape[0], _BATCH):
            v = structural_similarity_index_measure(
                _to_torch(a[s:s + _BATCH]), _to_torch(b[s:s + _BATCH]), gaussian_kernel=True,
                sigma=SSIM_SIGMA, kernel_size=SSIM_TAPS, data_range=DATA_RANGE, k1=SSIM_K1, k2=SSIM_K2,
                reduction="none")
            out[s:s + _BATCH] = v.double().numpy()
        return out
    raise ValueError(f"unknown SSIM backend {backend!r}; use 'separable' or 'torchmetrics'")


def ssim_masked(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Mean of the channel-mean SSIM map over the masked pixels (H,W bool); NaN if the mask is empty."""
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return float("nan")
    return float(_ssim_map_separable(_as_batch(pred)[0], _as_batch(target)[0])[m].mean(dtype=np.float64))


# ---------------------------------------------------------------------------------------- LPIPS
def lpips_backbone_file(net: str = "alex") -> str:
    """Path where torchvision caches the ImageNet backbone weights that LPIPS(net) loads."""
    import torchvision.models as tvm

    weights = {"alex": tvm.AlexNet_Weights.IMAGENET1K_V1, "vgg": tvm.VGG16_Weights.IMAGENET1K_V1,
               "squeeze": tvm.SqueezeNet1_1_Weights.IMAGENET1K_V1}
    if net not in weights:
        raise ValueError(f"unknown LPIPS backbone {net!r}; use one of {sorted(weights)}")
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights[net].url))


class LPIPSMetric:
    """LPIPS v0.1 (``lpips`` package) with an availability check that never touches the network.

    ``available`` is False and every call returns NaN when the torchvision backbone weights are not
    in the local cache; ``status`` then says which file is missing where. Built lazily on first use.
    """

    def __init__(self, net: str = "alex", batch: int = 4):
        self.net = net
        self.batch = batch
        self._model = None
        path = lpips_backbone_file(net)
        if os.path.isfile(path):
            self.available = True
            self.status = f"available: lpips v0.1 {net}, backbone weights {path}"
        else:
            self.available = False
            self.status = (f"unavailable: torchvision weights {os.path.basename(path)} not in "
                           f"{os.path.dirname(path)}")

    def _load(self):
        if self._model is None:
            import warnings

            import lpips

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # torchvision's 'pretrained' deprecation
                self._model = lpips.LPIPS(net=self.net, version="0.1", verbose=False).eval()
        return self._model

    @staticmethod
    def _scale(x: np.ndarray) -> torch.Tensor:
        return _to_torch(x) / 127.5 - 1.0

    def __call__(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Per-frame LPIPS, shape (N,); all NaN when unavailable."""
        a, b = _check_pair(pred, target)
        if not self.available:
            return np.full(a.shape[0], np.nan)
        model = self._load()
        model.spatial = False
        out = np.empty(a.shape[0], dtype=np.float64)
        with torch.inference_mode():
            for s in range(0, a.shape[0], self.batch):
                v = model(self._scale(a[s:s + self.batch]), self._scale(b[s:s + self.batch]))
                out[s:s + self.batch] = v.reshape(-1).double().numpy()
        return out

    def masked(self, pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
        """Mean of the spatial LPIPS map of one image pair over ``mask`` (H,W); NaN if unavailable/empty."""
        m = np.asarray(mask, dtype=bool)
        if not self.available or not m.any():
            return float("nan")
        a, b = _check_pair(pred, target)
        model = self._load()
        model.spatial = True
        try:
            with torch.inference_mode():
                v = model(self._scale(a[:1]), self._scale(b[:1]))[0, 0].double().numpy()
        finally:
            model.spatial = False
        return float(v[m].mean())


_LPIPS_CACHE: dict[str, LPIPSMetric] = {}


def get_lpips(net: str = "alex") -> LPIPSMetric:
    """Shared LPIPSMetric per backbone for the current torch hub dir (so the network loads once)."""
    key = f"{net}@{torch.hub.get_dir()}"
    if key not in _LPIPS_CACHE:
        _LPIPS_CACHE[key] = LPIPSMetric(net)
    return _LPIPS_CACHE[key]


def mean_or_nan(x) -> float:
    """Mean of the finite entries of x, NaN if there are none."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


__all__ = ["PSNR_CAP_DB", "DATA_RANGE", "psnr", "psnr_masked", "ssim", "ssim_maps", "ssim_masked",
           "LPIPSMetric", "get_lpips", "lpips_backbone_file", "mean_or_nan"]
