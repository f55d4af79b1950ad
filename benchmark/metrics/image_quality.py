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
    Wang et al. 2004 SSIM as torchmetrics' ``structural_similarity_index_measure`` defines it:
    Gaussian window sigma = 1.5, 11 x 11 taps, K1 = 0.01, K2 = 0.03, data_range = 255
    (C1 = (0.01*255)**2, C2 = (0.03*255)**2), population statistics, per RGB channel on float
    images in 0..255, the image reflect-padded (edge pixel not repeated) by the window radius so the
    SSIM map covers every pixel, and the map averaged over channels and ALL pixels. Two backends
    compute it: ``"separable"`` (default: OpenCV separable Gaussian filtering, float32, several
    times faster on CPU) and ``"torchmetrics"``. scikit-image's ``structural_similarity(
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
    channel_axis=-1)`` computes the same map but averages it only over the interior (it drops a
    5-pixel border). Measured on 96 smoke-suite frame pairs at 112x64 (benchmark/README.md gives the
    command): interior means agree with scikit-image to 2.8e-5, whole-image means differ by up to
    0.084 (mean 0.020), because at 112x64 the border is 25 % of the pixels; the two backends agree
    to 2.8e-4. The tests check the interior agreement and the backends. Masked SSIM averages the
    channel-mean SSIM map over the masked pixels.

LPIPS (>= 0, 0 = identical, lower is better)
    Zhang et al. 2018 LPIPS v0.1 from the ``lpips`` package, AlexNet backbone by default (``vgg``
    selectable), inputs scaled to [-1, 1]. The package ships the linear-layer weights; the
    backbone's ImageNet weights are torchvision's file (``alexnet-owt-7be5be79.pth``), read from
    ``--lpips-weights PATH`` / the environment variable ``RELIC_LPIPS_WEIGHTS`` when given, else
    from torchvision's cache (``<torch.hub.get_dir()>/checkpoints/<file>``). They are never
    downloaded, and the file is verified before LPIPS is called available: its SHA-256 must equal
    ``LPIPS_BACKBONE_SHA256[net]`` (AlexNet: the full digest of torchvision's file; other backbones:
    the 8-hex-digit prefix in torchvision's file name, torch.hub's own check). Without a verified
    file :class:`LPIPSMetric` is unavailable, its ``status`` says why (``"unavailable: ..."``) and it
    returns NaN: never a number from other weights. The verified file is loaded into the lpips
    network directly (torchvision's cache is not consulted again). Masked LPIPS averages the
    spatial LPIPS map (``spatial=True``, upsampled to the image size) over the mask.
"""
from __future__ import annotations

import os

import cv2
import numpy as np
import torch

from datagen.filebytes import sha256_file

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
#: SHA-256 of torchvision's backbone files: the full digest where known, else the 8-hex-digit prefix
#: torchvision puts in the file name (what torch.hub's check_hash compares).
LPIPS_BACKBONE_SHA256 = {
    "alex": "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",  # alexnet-owt-7be5be79.pth
    "vgg": "397923af",      # vgg16-397923af.pth
    "squeeze": "b8a52dc0",  # squeezenet1_1-b8a52dc0.pth
}
LPIPS_WEIGHTS_ENV = "RELIC_LPIPS_WEIGHTS"
_SHA_CACHE: dict[tuple, str] = {}


def lpips_backbone_file(net: str = "alex") -> str:
    """Path where torchvision caches the ImageNet backbone weights that LPIPS(net) loads."""
    import torchvision.models as tvm

    weights = {"alex": tvm.AlexNet_Weights.IMAGENET1K_V1, "vgg": tvm.VGG16_Weights.IMAGENET1K_V1,
               "squeeze": tvm.SqueezeNet1_1_Weights.IMAGENET1K_V1}
    if net not in weights:
        raise ValueError(f"unknown LPIPS backbone {net!r}; use one of {sorted(weights)}")
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights[net].url))


def _cached_sha256(path: str) -> str:
    """:func:`datagen.filebytes.sha256_file` of ``path``, cached per path, size and modification time
    (the backbone file is checked at every LPIPS load)."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_file(path)
    return _SHA_CACHE[key]


def verify_backbone(path: str, net: str = "alex") -> str | None:
    """None when ``path`` is the verified backbone file of ``net``, else the reason it is not."""
    if not os.path.isfile(path):
        return f"{path} does not exist"
    want = LPIPS_BACKBONE_SHA256.get(net)
    if want is None:
        return f"no known SHA-256 for LPIPS backbone {net!r}"
    got = _cached_sha256(path)
    if not got.startswith(want):
        return f"{path} fails its SHA-256 check (got {got[:16]}..., expected {want[:16]}...): not {net}'s ImageNet weights"
    return None


def lpips_weights_path(net: str = "alex", weights: str | None = None) -> str:
    """The backbone file LPIPS(net) uses: ``weights``, else $RELIC_LPIPS_WEIGHTS, else torchvision's cache."""
    return weights or os.environ.get(LPIPS_WEIGHTS_ENV) or lpips_backbone_file(net)


class LPIPSMetric:
    """LPIPS v0.1 (``lpips`` package) with an availability check that never touches the network.

    ``available`` is True only when the backbone file (``weights``, $RELIC_LPIPS_WEIGHTS or
    torchvision's cache) exists and passes its SHA-256 check; otherwise every call returns NaN and
    ``status`` says which file is missing or wrong. The network is built lazily on first use.
    """

    def __init__(self, net: str = "alex", batch: int = 4, weights: str | None = None):
        self.net = net
        self.batch = batch
        self._model = None
        self.path = lpips_weights_path(net, weights)
        if not os.path.isfile(self.path):
            self.available = False
            self.status = (f"unavailable: torchvision weights {os.path.basename(self.path)} not in "
                           f"{os.path.dirname(self.path)} (never downloaded; pass --lpips-weights PATH)")
            return
        bad = verify_backbone(self.path, net)
        self.available = bad is None
        self.status = (f"available: lpips v0.1 {net}, backbone weights {self.path} (SHA-256 verified)"
                       if bad is None else f"unavailable: {bad}")

    def _load(self):
        if self._model is None:
            import warnings

            import lpips

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # torchvision's 'pretrained' deprecation
                model = lpips.LPIPS(net=self.net, version="0.1", pnet_rand=True, verbose=False).eval()
            sd = torch.load(self.path, map_location="cpu", weights_only=True)
            feats = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
            for i in range(1, model.net.N_slices + 1):
                for idx, mod in getattr(model.net, f"slice{i}").named_children():
                    sub = {k[len(idx) + 1:]: v for k, v in feats.items() if k.startswith(f"{idx}.")}
                    if sub or list(mod.state_dict()):
                        mod.load_state_dict(sub, strict=True)
            self._model = model
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


def get_lpips(net: str = "alex", weights: str | None = None) -> LPIPSMetric:
    """Shared LPIPSMetric per backbone file (so the network loads and the file is hashed once)."""
    path = lpips_weights_path(net, weights)
    try:
        st = os.stat(path)
        stamp = (st.st_size, st.st_mtime_ns)
    except OSError:
        stamp = None
    key = f"{net}@{path}@{stamp}@{LPIPS_BACKBONE_SHA256.get(net)}"
    if key not in _LPIPS_CACHE:
        _LPIPS_CACHE[key] = LPIPSMetric(net, weights=weights)
    return _LPIPS_CACHE[key]


def mean_or_nan(x) -> float:
    """Mean of the finite entries of x, NaN if there are none."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else float("nan")


__all__ = ["PSNR_CAP_DB", "DATA_RANGE", "psnr", "psnr_masked", "ssim", "ssim_maps", "ssim_masked",
           "LPIPSMetric", "get_lpips", "lpips_backbone_file", "lpips_weights_path", "verify_backbone",
           "LPIPS_BACKBONE_SHA256", "LPIPS_WEIGHTS_ENV", "mean_or_nan"]
