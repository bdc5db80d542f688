"""Colour hints: a few dots or strokes of colour on one frame become a full exemplar.

A hint image is an RGBA PNG, transparent except where the colourist put colour. The
frame's chroma is spread from the hint pixels along the frame's own luminance by
colorization by optimization (Levin, Lischinski & Weiss 2004): every pixel's chroma is
the luma-affinity-weighted mean of its 8 neighbours', hint pixels are fixed. One sparse
linear system per frame, solved at the working resolution (both chroma planes share the
matrix), then guided up to full resolution by the luma like the model's own output.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from pipeline.colour import rgb_to_ycbcr, ycbcr_to_rgb
from pipeline.errors import InputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALPHA_PAINTED = 0.5  # a pixel is a hint where its alpha is at least this
SIGMA_FLOOR = 2e-4  # luma variance floor of the affinity (flat areas stay connected)
# ... and its cap: a hard luma edge stays a colour edge even where the 3x3 window straddles
# it (Levin's local variance alone leaks colour across; measured on validation wallpapers,
# the cap costs 0.03 dB chroma PSNR on average and fixes two-tone regions, tests/test_hints).
SIGMA_CAP = 0.05 ** 2


def load_hints(uri: str) -> tuple[np.ndarray, str]:
    """H x W x 4 float32 RGBA in [0, 1] and the file's sha256; InputError for anything that
    is not a PNG with an alpha channel and at least one painted pixel."""
    from pipeline.exemplar import decode_image, read_image_file

    data = read_image_file(uri, "hints")
    if not data.startswith(PNG_SIGNATURE):
        raise InputError(f"hints {uri}: not a PNG (hints are an RGBA PNG, transparent where there is no hint)")
    img = decode_image(data, uri, "hints")  # refuses an image above MAX_IMAGE_PIXELS before decoding it
    if img.ndim != 3 or img.shape[2] != 4:
        raise InputError(f"hints {uri}: the PNG has no alpha channel (hints are transparent except where "
                         "colour is given)")
    peak = 65535.0 if img.dtype == np.uint16 else 255.0
    rgba = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA).astype(np.float32) / peak
    if not np.any(rgba[..., 3] >= ALPHA_PAINTED):
        raise InputError(f"hints {uri}: no painted pixel (every pixel is transparent)")
    return rgba, hashlib.sha256(data).hexdigest()


def fit_hints(rgba: np.ndarray, size: tuple[int, int], matrix: str = "bt709") -> tuple[np.ndarray, np.ndarray]:
    """Scale the hint image to `size` (w, h) like an exemplar (cover, centre-crop) ->
    (chroma 2 x h x w of the hint colours, mask h x w bool of hint pixels). Colour is
    averaged over the painted part of each target pixel only (premultiplied), so a dot
    shrunk to one pixel keeps its colour instead of fading into the transparent border."""
    from pipeline.exemplar import fit

    premult = np.concatenate([rgba[..., :3] * rgba[..., 3:], rgba[..., 3:]], -1)
    small = fit(premult, size)
    alpha = small[..., 3]
    rgb = small[..., :3] / np.maximum(alpha[..., None], 1e-6)
    mask = alpha >= ALPHA_PAINTED
    if not mask.any():  # every dot smaller than half a working pixel: keep the strongest
        mask = alpha >= alpha.max() * 0.999
    return rgb_to_ycbcr(np.clip(rgb, 0, 1), matrix)[1:], mask


def affinity(luma: np.ndarray):
    """Levin et al.'s neighbour weights: luma h x w float [0, 1] -> (rows, cols, w) of the
    row-normalised 8-neighbour affinity (each pixel's weights sum to 1)."""
    h, w = luma.shape
    n = h * w
    y = luma.astype(np.float64)
    idx = np.arange(n).reshape(h, w)
    # Local luma variance in each 3x3 window: the affinity's scale, as in the paper.
    mean = cv2.blur(y, (3, 3), borderType=cv2.BORDER_REFLECT)
    var = np.maximum(cv2.blur(y * y, (3, 3), borderType=cv2.BORDER_REFLECT) - mean * mean, 0) * 0.6
    var = np.clip(var, SIGMA_FLOOR, SIGMA_CAP)
    rows, cols, vals = [], [], []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            ys, ye = max(0, -dy), h - max(0, dy)
            xs, xe = max(0, -dx), w - max(0, dx)
            r = idx[ys:ye, xs:xe]
            c = idx[ys + dy:ye + dy, xs + dx:xe + dx]
            diff = y[ys:ye, xs:xe] - y[ys + dy:ye + dy, xs + dx:xe + dx]
            wgt = np.exp(-diff * diff / (2 * var[ys:ye, xs:xe]))
            rows.append(r.ravel()); cols.append(c.ravel()); vals.append(wgt.ravel())
    rows, cols, vals = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    sums = np.bincount(rows, weights=vals, minlength=n)
    return rows, cols, vals / sums[rows]


def spread(luma: np.ndarray, chroma: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Levin et al.: luma h x w float [0, 1]; chroma 2 x h x w (read where mask);
    mask h x w bool -> 2 x h x w float32, equal to `chroma` on the mask."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    h, w = luma.shape
    n = h * w
    rows, cols, vals = affinity(luma)
    fixed = mask.ravel()
    keep = ~fixed[rows]  # hint pixels' rows become identity
    a = sp.csr_matrix((-vals[keep], (rows[keep], cols[keep])), shape=(n, n)) + sp.identity(n, format="csr")
    b = np.zeros((n, 2))
    b[fixed] = chroma.reshape(2, n).T[fixed]
    x = spla.spsolve(a.tocsc(), b)  # n x 2
    return x.T.reshape(2, h, w).astype(np.float32)


def hint_exemplar(luma: np.ndarray, rgba: np.ndarray, size: tuple[int, int], matrix: str,
                  painted: np.ndarray | None = None) -> np.ndarray:
    """The full exemplar a frame's hints make: luma H x W float [0, 1] (the frame at full
    resolution), rgba the hint image, `size` the working resolution (w, h) -> RGB
    H x W x 3 float [0, 1] with the frame's own luma. `painted` (RGB, any size): a painted
    exemplar of the same frame; where it has colour it wins over the hints."""
    from pipeline.model.upsample import downsize, guided_upsample

    small = downsize(luma, size)
    chroma, mask = fit_hints(rgba, size, matrix)
    if painted is not None:
        from pipeline.exemplar import fit

        p = rgb_to_ycbcr(fit(painted, size), matrix)[1:]
        coloured = np.hypot(p[0], p[1]) > 0.02
        chroma = np.where(coloured, p, chroma)
        mask = mask | coloured
    c = spread(small, chroma, mask)
    full = guided_upsample(c, small, luma)
    return ycbcr_to_rgb(np.concatenate([luma[None], full]), matrix)

