"""Dark-channel prior (DCP) dehazing, He, Sun and Tang (CVPR 2009; TPAMI 33(12), 2011), with the
transmission refined by the guided filter (He, Sun and Tang, ECCV 2010; TPAMI 35(6), 2013). numpy only.

Model (the same scattering model as ``rscore.degradations.haze``, with one transmission for all bands)::

    I(x) = J(x) t(x) + A (1 - t(x))
    dark(J)(x) = min_{y in patch(x)} min_{c in visible} J_c(y)  ~ 0 for haze-free outdoor scenes   (eq. 5)
    t(x) = 1 - omega dark(I / A)(x)                                                                   (eq. 12)
    J(x) = (I(x) - A) / max(t(x), t0) + A                                                             (eq. 22)

``A`` is the input's value at the brightest (highest visible-band sum) of the 0.1 % pixels with the largest
dark channel (section 4.4 of the TPAMI paper).

**Multispectral input.** The dark channel is taken over the *visible* bands (blue, green, red) only. The
prior is a statement about visible colour (shadows, saturated colours, dark objects); vegetation is bright in
the near infrared, so including NIR would lift the dark channel over every vegetated patch and read as haze.
The transmission from the visible bands is then applied to every band, NIR included. Real haze is thinner
in the NIR (Angstrom law), so DCP over-corrects NIR: that is a property of the baseline, kept on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Band names treated as visible when choosing the dark-channel bands.
VISIBLE_BAND_NAMES = ("blue", "green", "red")


@dataclass(frozen=True)
class DarkChannelParams:
    """Parameters of DCP dehazing (defaults: He et al.'s values).

    Attributes:
        patch_px: Side of the square dark-channel patch, pixels (odd; He uses 15 px on ~600 px photos;
            at 10 m that is 150 m, so use fewer pixels for coarser rasters).
        omega: Fraction of haze removed, 0–1 (0.95 keeps a trace of haze for depth perception).
        t0: Lower bound of the transmission in the recovery, 0–1 (limits noise amplification).
        top_fraction: Fraction of pixels with the largest dark channel searched for the airlight (0.001).
        guided_radius_px: Box radius of the guided filter, pixels (window side 2 r + 1).
        guided_eps: Regularisation of the guided filter, squared data units (1e-3 for [0, 1] data).
    """

    patch_px: int = 15
    omega: float = 0.95
    t0: float = 0.1
    top_fraction: float = 0.001
    guided_radius_px: int = 60
    guided_eps: float = 1e-3

    def __post_init__(self) -> None:
        if self.patch_px < 1 or self.patch_px % 2 == 0:
            raise ValueError(f"patch_px must be odd and positive, got {self.patch_px}")
        if not 0.0 < self.omega <= 1.0:
            raise ValueError(f"omega must be in (0, 1], got {self.omega}")
        if not 0.0 < self.t0 < 1.0:
            raise ValueError(f"t0 must be in (0, 1), got {self.t0}")
        if not 0.0 < self.top_fraction <= 1.0:
            raise ValueError(f"top_fraction must be in (0, 1], got {self.top_fraction}")
        if self.guided_radius_px < 0 or self.guided_eps <= 0:
            raise ValueError(f"guided filter needs radius >= 0 and eps > 0, got r={self.guided_radius_px}, "
                             f"eps={self.guided_eps}")


@dataclass(frozen=True, eq=False)
class DarkChannelResult:
    """Output of :func:`dehaze_dcp`.

    Attributes:
        image: float32 (bands, rows, cols), dehazed image J, same units as the input (not clipped).
        transmission: float32 (rows, cols), guided-filter-refined t (before the ``t0`` floor).
        transmission_raw: float32 (rows, cols), patch-wise t of eq. 12.
        airlight: float32 (bands,), A in input units.
        dark: float32 (rows, cols), dark channel of the input.
    """

    image: np.ndarray
    transmission: np.ndarray
    transmission_raw: np.ndarray
    airlight: np.ndarray
    dark: np.ndarray


def visible_band_indices(band_names: Sequence[str]) -> tuple[int, ...]:
    """0-based indices of the blue, green and red bands in ``band_names``.

    Raises:
        ValueError: If none of the names is visible (the prior is defined on visible colour).
    """
    idx = tuple(i for i, n in enumerate(band_names) if n in VISIBLE_BAND_NAMES)
    if not idx:
        raise ValueError(f"no visible band ({', '.join(VISIBLE_BAND_NAMES)}) among {list(band_names)}; "
                         "the dark-channel prior needs at least one")
    return idx


def _min_filter(img: np.ndarray, size_px: int) -> np.ndarray:
    """Minimum over a size x size window inside the image (separable, +inf padding)."""
    if size_px == 1:
        return img.copy()
    r = size_px // 2
    padded = np.pad(img, r, mode="constant", constant_values=np.inf)
    rows_min = np.lib.stride_tricks.sliding_window_view(padded, size_px, axis=0).min(axis=-1)
    return np.lib.stride_tricks.sliding_window_view(rows_min, size_px, axis=1).min(axis=-1)


def dark_channel(image: np.ndarray, patch_px: int, bands: Sequence[int] | None = None) -> np.ndarray:
    """Dark channel: minimum over ``bands`` and over a ``patch_px`` square around each pixel.

    Args:
        image: float (bands, rows, cols).
        patch_px: Odd patch side, pixels.
        bands: Band indices to take the minimum over (None: all).

    Returns:
        float64 (rows, cols).
    """
    sel = image if bands is None else image[list(bands)]
    return _min_filter(np.min(sel.astype(np.float64), axis=0), patch_px)


def box_mean(img: np.ndarray, radius_px: int) -> np.ndarray:
    """Mean over the (2 r + 1)^2 window around each pixel, counting only pixels inside the image.

    O(1) per pixel with cumulative sums (the guided filter's box filter).

    Args:
        img: float (rows, cols).
        radius_px: Window radius r, pixels (>= 0).

    Returns:
        float64 (rows, cols).
    """
    rows, cols = img.shape
    r = int(radius_px)

    def sums(a: np.ndarray) -> np.ndarray:
        c = np.zeros((rows + 1, cols + 1), np.float64)
        c[1:, 1:] = a.astype(np.float64).cumsum(0).cumsum(1)
        y0 = np.clip(np.arange(rows) - r, 0, rows)
        y1 = np.clip(np.arange(rows) + r + 1, 0, rows)
        x0 = np.clip(np.arange(cols) - r, 0, cols)
        x1 = np.clip(np.arange(cols) + r + 1, 0, cols)
        return c[y1][:, x1] - c[y0][:, x1] - c[y1][:, x0] + c[y0][:, x0]

    return sums(img) / sums(np.ones((rows, cols)))


def guided_filter(guide: np.ndarray, src: np.ndarray, radius_px: int, eps: float) -> np.ndarray:
    """Edge-preserving smoothing of ``src`` steered by a grey ``guide`` (He et al. 2013, Algorithm 1).

    ``q = mean(a) * I + mean(b)`` with ``a = cov(I, p) / (var(I) + eps)``, ``b = mean(p) - a mean(I)``.

    Args:
        guide: float (rows, cols), guidance image I.
        src: float (rows, cols), image p to filter.
        radius_px: Box radius, pixels.
        eps: Regularisation, squared data units.

    Returns:
        float64 (rows, cols).
    """
    if guide.shape != src.shape:
        raise ValueError(f"guide {guide.shape} and src {src.shape} must have the same shape")
    g = guide.astype(np.float64)
    p = src.astype(np.float64)
    mean_g = box_mean(g, radius_px)
    mean_p = box_mean(p, radius_px)
    var_g = box_mean(g * g, radius_px) - mean_g * mean_g
    cov_gp = box_mean(g * p, radius_px) - mean_g * mean_p
    a = cov_gp / (var_g + eps)
    b = mean_p - a * mean_g
    return box_mean(a, radius_px) * g + box_mean(b, radius_px)


def dehaze_dcp(image: np.ndarray, visible_bands: Sequence[int], params: DarkChannelParams | None = None
               ) -> DarkChannelResult:
    """Dehaze with the dark-channel prior.

    Args:
        image: float (bands, rows, cols), values in [0, 1]-ish units (reflectance 0–1 or 8-bit / 255).
        visible_bands: 0-based indices of the visible bands (see :func:`visible_band_indices`); the dark
            channel, the airlight search and the guide use only these.
        params: DCP parameters (defaults: He et al.).

    Returns:
        The dehazed image and the intermediate maps.

    Raises:
        ValueError: On a non-3-D or non-finite image, bad band indices, or an all-zero airlight.
    """
    p = params or DarkChannelParams()
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 3:
        raise ValueError(f"expected (bands, rows, cols), got shape {img.shape}")
    if not np.isfinite(img).all():
        raise ValueError("image contains NaN/inf; fill nodata before dehazing")
    vis = [int(b) for b in visible_bands]
    if not vis or not all(0 <= b < img.shape[0] for b in vis):
        raise ValueError(f"visible_bands {vis} must be non-empty indices in [0, {img.shape[0]})")
    rows, cols = img.shape[1:]
    dark = dark_channel(img, p.patch_px, vis)
    # airlight: among the top_fraction most haze-opaque pixels, the one with the brightest visible colour
    n = max(1, int(round(p.top_fraction * rows * cols)))
    flat = dark.ravel()
    cand = np.argpartition(-flat, n - 1)[:n]
    brightness = img[vis].reshape(len(vis), -1)[:, cand].sum(axis=0)
    best = cand[int(np.argmax(brightness))]
    airlight = img[:, best // cols, best % cols].copy()
    if np.any(airlight[vis] <= 0):
        raise ValueError(f"airlight {airlight.tolist()} is not positive in the visible bands; the image is black")
    t_raw = 1.0 - p.omega * dark_channel(img / np.maximum(airlight, 1e-12)[:, None, None], p.patch_px, vis)
    guide = img[vis].mean(axis=0)
    t = guided_filter(guide, t_raw, p.guided_radius_px, p.guided_eps)
    tt = np.maximum(t, p.t0)[None]
    a = airlight[:, None, None]
    out = (img - a) / tt + a
    return DarkChannelResult(out.astype(np.float32), t.astype(np.float32), t_raw.astype(np.float32),
                             airlight.astype(np.float32), dark.astype(np.float32))
