"""Per-frame features of a film for scene detection.

`FeatureExtractor.process(index, luma)` is fed downscaled luma thumbnails in frame order
and records, for each frame j, measurements that look only *backwards* (frames j-L..j, L =
`SceneConfig.lookback`). A scan of the time range [s, e) therefore decodes from s - L and
keeps rows s..e-1: every row is computed from exactly the same frames as in a sequential
scan, so a parallel scan gives bit-identical feature arrays, and the decision pass
(`detect.py`) run on the merged arrays gives an identical scene list by construction.

Columns (one value per frame; "prev" = frame j-1; NaN where undefined):

mean, std       thumbnail luma mean / standard deviation, 0..1 (black..white)
spread          p90 - p10 of the luma at 1/4 of the thumbnail's size: the flatness measure
                (robust to grain, and to a scratch or two, which cover < 10% of columns)
hist            earth mover's distance between the luma histograms of prev and j, divided
                by hist_scale, capped at 1
ssim            1 - SSIM(prev, j): motion-compensated, contrast-normalised, block-median
dx, dy          global translation prev -> j (thumbnail pixels), 0 if not reliable
lag{k}          like ssim but between j-k and j (k = 2 .. flash_max_len+1), computed only
                near a high consecutive score (otherwise NaN)
dab{k}, dmix{k}, dac{k}, dcb{k}
                dissolve test centred on c = j-k with ends a = j-2k, b = j, the three
                frames aligned by the accumulated motion: 1 - correlation of (a, b), of
                (c, mix of a and b), of (c, a), of (c, b). NaN when any is flat or the
                motion is too large to align. Where the translation-only evidence reaches
                dissolve_verify_gate, each end is re-aligned to c by its own displacement,
                measured directly (phase correlation end -> c; the sum of k per-frame shifts
                under-estimates slow pans) and fitted jointly with the zoom that best
                predicts c from that end alone, before these are computed.
cab{k}, cac{k}, ccb{k}
                the same (ends, c-a, c-b) after a Gaussian blur of dissolve_coarse_sigma: the
                coarse-scale check of a candidate; NaN where not verified.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from .config import SceneConfig

# SSIM constants for contrast-normalised thumbnails offset by +4 (values ~0..8).
_OFFSET = 4.0
_C1 = (0.01 * 8) ** 2
_C2 = (0.03 * 8) ** 2
_BLOCKS = (8, 4)  # grid for the block-median SSIM
_MIN_RESPONSE = 0.05  # phase-correlation peak below which a shift is not trusted


def feature_columns(config: SceneConfig) -> list[str]:
    cols = ["mean", "std", "spread", "hist", "ssim", "dx", "dy"]
    cols += [f"lag{k}" for k in range(2, config.flash_max_len + 2)]
    for k in config.dissolve_half_lengths:
        cols += [f"dab{k}", f"dmix{k}", f"dac{k}", f"dcb{k}", f"cab{k}", f"cac{k}", f"ccb{k}"]
    return cols


def _ssim_map(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    blur = lambda a: cv2.GaussianBlur(a, (7, 7), 1.5)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    s = ((2 * mx * my + _C1) * (2 * cxy + _C2)) / ((mx * mx + my * my + _C1) * (vx + vy + _C2))
    return s, vx + vy


def _block_dissim(x: np.ndarray, y: np.ndarray, margin: tuple[int, int] = (0, 0)) -> float:
    """1 - median SSIM over the informative blocks of a grid."""
    s, act = _ssim_map(x, y)
    mx, my = margin
    h, w = s.shape
    if 2 * mx < w - 8 and 2 * my < h - 8:
        s = s[my:h - my, mx:w - mx]
        act = act[my:h - my, mx:w - mx]
    sb = cv2.resize(s, _BLOCKS, interpolation=cv2.INTER_AREA).ravel()
    ab = cv2.resize(act, _BLOCKS, interpolation=cv2.INTER_AREA).ravel()
    # Blocks flat in both frames say nothing; keep the more active half (at least 8 blocks)
    # among those with real texture.
    order = np.argsort(-ab, kind="stable")
    keep = max(8, int(np.count_nonzero(ab > 0.05)))
    sel = sb[order[:keep]]
    return float(np.clip(1.0 - np.median(sel), 0.0, 1.0))


def _half(a: np.ndarray) -> np.ndarray:
    return cv2.resize(a, (a.shape[1] // 2, a.shape[0] // 2), interpolation=cv2.INTER_AREA)


def _shift(prev: np.ndarray, cur: np.ndarray, window: np.ndarray) -> tuple[float, float] | None:
    """Global translation prev -> cur (cur(x) = prev(x - d)), estimated at half resolution.
    (cv2.phaseCorrelate applies the window to its inputs in place: it gets fresh arrays.)"""
    (dx, dy), resp = cv2.phaseCorrelate(_half(prev), _half(cur), window)
    dx, dy = 2.0 * dx, 2.0 * dy
    h, w = prev.shape
    if resp < _MIN_RESPONSE or abs(dx) > w / 4 or abs(dy) > h / 4:
        return None
    return float(dx), float(dy)


def _mc_dissim(prev: np.ndarray, cur: np.ndarray, window: np.ndarray, mc: bool) -> tuple[float, float, float]:
    """Motion-compensated block dissimilarity; returns (dissim, dx, dy)."""
    d = _shift(prev, cur, window) if mc else None
    if d is None or (abs(d[0]) < 0.05 and abs(d[1]) < 0.05):
        return _block_dissim(prev, cur), 0.0, 0.0
    m = np.float32([[1, 0, d[0]], [0, 1, d[1]]])
    h, w = prev.shape
    warped = cv2.warpAffine(prev, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    margin = (int(np.ceil(abs(d[0]))), int(np.ceil(abs(d[1]))))
    return _block_dissim(warped, cur, margin), d[0], d[1]


class _Frame:
    __slots__ = ("index", "f", "g", "small", "mean", "std", "spread", "hist", "dx", "dy", "ssim", "score", "flat")


class FeatureExtractor:
    """Feed thumbnails in frame order with `process`; read the rows with `rows()`."""

    def __init__(self, config: SceneConfig, black: float = 0.0, white: float = 255.0):
        self.config = config
        self.black = float(black)
        self.scale = 1.0 / max(1e-6, float(white) - float(black))
        self.columns = feature_columns(config)
        self._col = {c: i for i, c in enumerate(self.columns)}
        self._ring: deque[_Frame] = deque(maxlen=config.lookback + 1)
        self._window = None
        self._hwin = None
        self._fwin = None
        self.index: list[int] = []
        self._rows: list[np.ndarray] = []

    def process(self, index: int, luma: np.ndarray) -> None:
        cfg = self.config
        fr = _Frame()
        fr.index = index
        f = np.clip((luma.astype(np.float32) - self.black) * self.scale, 0.0, 1.0)
        # A light blur: grain averages out, shot structure stays.
        f = cv2.GaussianBlur(f, (5, 5), cfg.blur_sigma) if cfg.blur_sigma > 0 else f
        fr.f = f
        fr.mean = float(f.mean())
        fr.std = float(f.std())
        fr.g = (f - fr.mean) * (1.0 / max(fr.std, cfg.std_floor)) + _OFFSET
        fr.small = _half(f)
        coarse = _half(fr.small).ravel()
        lo_i, hi_i = int(0.1 * (coarse.size - 1)), int(0.9 * (coarse.size - 1))
        part = np.partition(coarse, (lo_i, hi_i))
        fr.spread = float(part[hi_i] - part[lo_i])
        fr.flat = fr.spread < cfg.flat_spread
        fr.hist = cv2.calcHist([f], [0], None, [cfg.hist_bins], [0.0, 1.0 + 1e-6]).ravel() / f.size
        if self._window is None or self._window.shape != f.shape:
            self._window = cv2.createHanningWindow((f.shape[1] // 2, f.shape[0] // 2), cv2.CV_32F)
        row = np.full(len(self.columns), np.nan, dtype=np.float64)
        c = self._col
        row[c["mean"]] = fr.mean
        row[c["std"]] = fr.std
        row[c["spread"]] = fr.spread
        ring = self._ring
        prev = ring[-1] if ring and ring[-1].index == index - 1 else None
        fr.dx = fr.dy = 0.0
        fr.ssim = np.nan
        fr.score = 0.0
        if prev is None:
            ring.clear()
        else:
            # Earth mover's distance of the luma histograms (luma units), scaled: a flicker
            # shifts a narrow histogram across bins but moves it little.
            h = min(1.0, float(np.abs(np.cumsum(fr.hist - prev.hist)).sum()) / cfg.hist_bins / cfg.hist_scale)
            row[c["hist"]] = h
            d, dx, dy = _mc_dissim(prev.g, fr.g, self._window, cfg.motion_compensation)
            fr.ssim, fr.dx, fr.dy = d, dx, dy
            fr.score = (1.0 - cfg.hist_weight) * d + cfg.hist_weight * h
            row[c["ssim"]], row[c["dx"]], row[c["dy"]] = d, dx, dy
        ring.append(fr)
        frames = list(ring)  # frames[-1] is j, frames[-1-k] is j-k (contiguous)
        n = len(frames)
        # Flash bridging: only across a cut candidate (score >= cut_threshold).
        for k in range(2, cfg.flash_max_len + 2):
            if n <= k:
                break
            if any(x.score >= cfg.cut_threshold for x in frames[n - k + 1:]):
                d, _, _ = _mc_dissim(frames[n - 1 - k].g, fr.g, self._window, cfg.motion_compensation)
                row[c[f"lag{k}"]] = d
        # Dissolve test centred on j-k.
        for k in cfg.dissolve_half_lengths:
            if n <= 2 * k:
                break
            a, m, b = frames[n - 1 - 2 * k], frames[n - 1 - k], fr
            if a.flat or m.flat or b.flat:
                continue
            vals = self._dissolve(frames, n - 1 - 2 * k, n - 1 - k, n - 1)
            if vals is not None:
                for name, v in zip(("dab", "dmix", "dac", "dcb", "cab", "cac", "ccb"), vals):
                    row[c[f"{name}{k}"]] = v
        self.index.append(index)
        self._rows.append(row)

    def _dissolve(self, frames, ia, ic, ib):
        """(1-r_ab, 1-r_mix, 1-r_ac, 1-r_cb) on half-size thumbnails, aligned to c."""
        # Accumulated translation a -> c and c -> b, summed in a fixed order (deterministic).
        dac = [0.0, 0.0]
        for x in frames[ia + 1:ic + 1]:
            dac[0] += x.dx
            dac[1] += x.dy
        dcb = [0.0, 0.0]
        for x in frames[ic + 1:ib + 1]:
            dcb[0] += x.dx
            dcb[1] += x.dy
        fa, fc, fb = frames[ia].small, frames[ic].small, frames[ib].small
        h, w = fc.shape
        # c(x) = a(x - dac), b(x) = c(x - dcb)  =>  a at x - dac, b at x + dcb (c coordinates).
        offs = [(-round(dac[0] / 2), -round(dac[1] / 2)), (0, 0), (round(dcb[0] / 2), round(dcb[1] / 2))]
        x0 = max(0, *(-o[0] for o in offs))
        x1 = min(w, *(w - o[0] for o in offs))
        y0 = max(0, *(-o[1] for o in offs))
        y1 = min(h, *(h - o[1] for o in offs))
        if x1 - x0 < w // 2 or y1 - y0 < h // 2:
            return None
        ca = fa[y0 + offs[0][1]:y1 + offs[0][1], x0 + offs[0][0]:x1 + offs[0][0]]
        cc = fc[y0:y1, x0:x1]
        cb = fb[y0 + offs[2][1]:y1 + offs[2][1], x0 + offs[2][0]:x1 + offs[2][0]]
        vals = _mix_fit(ca.ravel(), cc.ravel(), cb.ravel())
        cfg = self.config
        if vals is None:
            return None
        from .detect import dissolve_evidence

        ev = dissolve_evidence(*(np.array([v]) for v in (vals[0], vals[2], vals[3])), cfg)[0]
        if not ev >= cfg.dissolve_verify_gate:
            return vals + (np.nan, np.nan, np.nan)
        # A candidate. Before calling c a mix, let each end explain it as well as it can by
        # itself: with a zoom (scale about the frame centre) on top of the translation, so
        # a zoom or dolly (one picture, rescaled) is not taken for a mix of two ...
        # Each end is placed by its own displacement to c, measured directly (phase
        # correlation end -> c on the full thumbnails), not by the sum of the k per-frame
        # shifts: those are biased towards zero for sub-pixel motion (a slow pan), and ends
        # misaligned symmetrically by the missing drift make c look like their mean.
        k = ic - ia
        ta = self._end_shift(frames[ia].f, frames[ic].f, (-dac[0], -dac[1]))
        tb = self._end_shift(frames[ib].f, frames[ic].f, (dcb[0], dcb[1]))
        zmax = k * cfg.dissolve_zoom_rate if cfg.dissolve_zoom_rate > 0 else 0.0
        if cfg.dissolve_direct_align or zmax > 0:
            zoomed = _zoom_aligned(fa, fc, fb, (ta[0] / 2, ta[1] / 2), (tb[0] / 2, tb[1] / 2), zmax,
                                   cfg.dissolve_refine_shift, self._half_window(fc))
            if zoomed is not None:
                ca, cc, cb = zoomed
                vals = _mix_fit(ca.ravel(), cc.ravel(), cb.ravel())
                if vals is None:
                    return None
        # ... and repeat the test on the coarse structure only (blurred): a picture moving by
        # a fraction of a pixel is interpolated by the mean of its neighbours at fine scale
        # (the mix "explains" it), not at coarse scale, where a cross-fade still is a mix.
        sig = cfg.dissolve_coarse_sigma
        blur = lambda x: cv2.GaussianBlur(np.ascontiguousarray(x), (0, 0), sig).ravel()  # noqa: E731
        coarse = _mix_fit(blur(ca), blur(cc), blur(cb))
        if coarse is None:
            return vals + (np.nan, np.nan, np.nan)
        return vals + (coarse[0], coarse[2], coarse[3])

    def _half_window(self, fc: np.ndarray) -> np.ndarray:
        if self._hwin is None or self._hwin.shape != fc.shape:
            self._hwin = cv2.createHanningWindow((fc.shape[1], fc.shape[0]), cv2.CV_32F)
        return self._hwin

    def _end_shift(self, end: np.ndarray, c: np.ndarray, accumulated: tuple[float, float]) -> tuple[float, float]:
        """Translation t (thumbnail pixels) with c(x) ~ end(x + t): of the direct phase
        correlation estimate and the accumulated per-frame one, the one under which the end
        predicts c better (correlation). Only the accumulated one when direct alignment is off."""
        if not self.config.dissolve_direct_align:
            return accumulated
        (dx, dy), resp = cv2.phaseCorrelate(end.copy(), c.copy(), self._window_full(c))
        h, w = c.shape
        if not (resp >= _MIN_RESPONSE and abs(dx) < w / 3 and abs(dy) < h / 3):
            return accumulated
        direct = (-float(dx), -float(dy))
        return max((direct, accumulated), key=lambda t: _shift_corr(end, c, t))

    def _window_full(self, c: np.ndarray) -> np.ndarray:
        if self._fwin is None or self._fwin.shape != c.shape:
            self._fwin = cv2.createHanningWindow((c.shape[1], c.shape[0]), cv2.CV_32F)
        return self._fwin

    def rows(self, start: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(frame indices, N x C feature matrix) for the frames processed, from `start` on."""
        idx = np.asarray(self.index, dtype=np.int64)
        mat = np.vstack(self._rows) if self._rows else np.zeros((0, len(self.columns)))
        if start is not None:
            keep = idx >= start
            idx, mat = idx[keep], mat[keep]
        return idx, mat


def _mix_fit(ca: np.ndarray, cc: np.ndarray, cb: np.ndarray):
    """(1-r_ab, 1-r_mix, 1-r_ac, 1-r_cb) of three aligned, equally cropped pixel vectors."""
    ca = ca - ca.mean()
    cc = cc - cc.mean()
    cb = cb - cb.mean()
    aa, bb, c2 = float(ca @ ca), float(cb @ cb), float(cc @ cc)
    ab, ac, cbv = float(ca @ cb), float(cc @ ca), float(cc @ cb)
    if min(aa, bb, c2) <= 1e-9:
        return None
    mm = aa + 2 * ab + bb
    r_ab = ab / np.sqrt(aa * bb)
    r_ac = ac / np.sqrt(aa * c2)
    r_cb = cbv / np.sqrt(bb * c2)
    r_mix = (ac + cbv) / np.sqrt(max(mm, 1e-12) * c2)
    return 1 - r_ab, 1 - r_mix, 1 - r_ac, 1 - r_cb


_ZOOM_STEP = 0.02  # log-scale step of the coarse zoom search (then refined twice by halves)


def _shift_corr(src: np.ndarray, dst: np.ndarray, t: tuple[float, float]) -> float:
    """Correlation of dst with src translated by t (dst(x) ~ src(x + t)), on the region
    both cover."""
    h, w = dst.shape
    m = np.float32([[1, 0, t[0]], [0, 1, t[1]]])
    moved = cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REFLECT)
    mx, my = int(np.ceil(abs(t[0]))), int(np.ceil(abs(t[1])))
    if w - 2 * mx < 8 or h - 2 * my < 8:
        return -1.0
    a = moved[my:h - my, mx:w - mx].ravel()
    b = dst[my:h - my, mx:w - mx].ravel()
    a = a - a.mean()
    b = b - b.mean()
    return float(a @ b) / max(float(np.sqrt((a @ a) * (b @ b))), 1e-12)


def _zoom_aligned(fa, fc, fb, ta, tb, zmax: float, refine: float = 0.0, window=None):
    """Ends a, b warped into c's coordinates, each with the zoom (|log scale| <= zmax) and
    translation that best predict c from it alone: a zoom search about the given translation,
    then the residual translation at the best zoom (phase correlation, at most `refine`
    pixels per axis), then the zoom refined by halving steps. (a, c, b) cropped to the region
    valid for every warp tried, as pixel vectors. None if that region is too small."""
    h, w = fc.shape
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    smax = float(np.exp(zmax + _ZOOM_STEP)) if zmax > 0 else 1.0
    xs0, xs1, ys0, ys1 = [], [], [], []
    for tx, ty in (ta, tb):
        # src = C + (x - C) * s + t must stay inside the picture for every s <= smax and
        # every translation within `refine` of t.
        xs0.append(cx - (cx + tx - refine) / smax)
        xs1.append(cx + (w - 1 - cx - tx - refine) / smax)
        ys0.append(cy - (cy + ty - refine) / smax)
        ys1.append(cy + (h - 1 - cy - ty - refine) / smax)
    x0, x1 = max(0, int(np.ceil(max(xs0)))), min(w, int(np.floor(min(xs1))) + 1)
    y0, y1 = max(0, int(np.ceil(max(ys0)))), min(h, int(np.floor(min(ys1))) + 1)
    if x1 - x0 < w // 3 or y1 - y0 < h // 3:
        return None
    cc = fc[y0:y1, x0:x1].ravel()
    ccz = cc - cc.mean()
    ccz = ccz / max(float(np.sqrt(ccz @ ccz)), 1e-9)

    def warp_full(src, t, z):
        s = float(np.exp(z))
        m = np.float32([[s, 0, cx * (1 - s) + t[0]], [0, s, cy * (1 - s) + t[1]]])
        return cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT)

    def warp(src, t, z):
        return warp_full(src, t, z)[y0:y1, x0:x1].ravel()

    def corr(v):
        v = v - v.mean()
        return float(v @ ccz) / max(float(np.sqrt(v @ v)), 1e-9)

    ends = []
    for src, t in ((fa, ta), (fb, tb)):
        t = (float(t[0]), float(t[1]))
        cache = {}

        def score(z):
            key = (round(z, 6), round(t[0], 6), round(t[1], 6))
            if key not in cache:
                cache[key] = corr(warp(src, t, z))
            return cache[key]

        def pick(zs):
            return max(zs, key=lambda z: (score(z), -abs(z)))

        n = int(np.ceil(zmax / _ZOOM_STEP)) if zmax > 0 else 0
        best = pick([i * _ZOOM_STEP for i in range(-n, n + 1)])
        if refine > 0 and window is not None:
            # Residual translation at that zoom: c(x) = W(x - r) = src(C + (x - r - C)s + t).
            (rx, ry), resp = cv2.phaseCorrelate(warp_full(src, t, best), fc.copy(), window)
            if resp >= _MIN_RESPONSE:
                s_ = float(np.exp(best))
                cand = (t[0] - s_ * float(np.clip(rx, -refine, refine)),
                        t[1] - s_ * float(np.clip(ry, -refine, refine)))
                t0 = t
                old = score(best)
                t = cand
                if score(best) < old:
                    t = t0
        if n > 0:
            step = _ZOOM_STEP
            for _ in range(2):
                step /= 2
                best = pick((best - step, best, best + step))
        ends.append(warp(src, t, best))
    shape = (y1 - y0, x1 - x0)
    return ends[0].reshape(shape), cc.reshape(shape), ends[1].reshape(shape)
