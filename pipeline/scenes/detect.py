"""The decision pass: merged per-frame features -> scene boundaries.

Runs once, sequentially, over the feature arrays of the whole film (see `features.py`),
so a parallel scan and a sequential scan decide on identical numbers.

Detectors, each a small class with one method in PySceneDetect's style, propose boundaries
(`Boundary`: frame, transition, score, strength); `decide` merges them under the minimum
scene length, keeping the strongest.

Where a gradual transition's boundary (the new scene's start frame) is placed:

* hard cut: the first frame of the new shot;
* fade in (from black / white / grey): the first frame that is no longer flat, i.e. the
  first frame where the new picture is visible; fade out: the first flat frame. A flat
  hold at least `min_scene_len` long becomes its own scene, flagged `low_variability`;
  a shorter dip (fade out, a few dark frames, fade in) is one transition, placed at the
  first non-flat frame of the fade in;
* dissolve: the first frame where the incoming shot dominates (mix weight >= 1/2, i.e.
  the frame is closer to the end of the dissolve than to its start), the midpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import SceneConfig


@dataclass(frozen=True)
class Boundary:
    frame: int
    transition: str  # 'cut' | 'fade' | 'dissolve'
    score: float
    strength: float  # comparable across detectors: >= 1 at the detector's threshold
    span: tuple[int, int] | None = None  # frames the transition occupies (gradual only)


class Features:
    """Named column access over the merged N x C matrix."""

    def __init__(self, columns: list[str], matrix: np.ndarray):
        self.columns = list(columns)
        self.m = matrix
        self.n = matrix.shape[0]
        self._i = {c: i for i, c in enumerate(columns)}

    def __getitem__(self, name: str) -> np.ndarray:
        return self.m[:, self._i[name]]

    def has(self, name: str) -> bool:
        return name in self._i


def cut_scores(f: Features, cfg: SceneConfig) -> np.ndarray:
    ssim = np.nan_to_num(f["ssim"], nan=0.0)
    hist = np.nan_to_num(f["hist"], nan=0.0)
    return (1.0 - cfg.hist_weight) * ssim + cfg.hist_weight * hist


def flat_runs(flat: np.ndarray) -> list[tuple[int, int]]:
    runs, n, i = [], len(flat), 0
    while i < n:
        if flat[i]:
            j = i
            while j < n and flat[j]:
                j += 1
            runs.append((i, j))
            i = j
        else:
            i += 1
    return runs


def bridged(f: Features, cfg: SceneConfig, j: int) -> bool:
    """True if the picture after boundary j returns, within flash_max_len frames, to the one
    before it: some pair (b-k, b) with b-k < j <= b, k <= flash_max_len + 1, is similar."""
    for k in range(2, cfg.flash_max_len + 2):
        col = f"lag{k}"
        if not f.has(col):
            continue
        lag = f[col]
        for b in range(j, min(j + k, f.n)):
            if b - k < 0:
                continue
            v = lag[b]
            if v == v and v < cfg.flash_similarity:
                return True
    return False


class CutDetector:
    """Hard cuts: a structural + histogram score that stands out of its neighbourhood."""

    def __init__(self, cfg: SceneConfig):
        self.cfg = cfg

    def boundaries(self, f: Features) -> list[Boundary]:
        cfg = self.cfg
        s = cut_scores(f, cfg)
        n, w = f.n, cfg.adaptive_window
        out = []
        for j in np.flatnonzero(s >= cfg.cut_threshold):
            j = int(j)
            if j == 0:
                continue
            lo, hi = max(1, j - w), min(n, j + w + 1)
            neigh = [s[i] for i in range(lo, hi) if abs(i - j) > 1]
            local = float(np.mean(neigh)) if neigh else 0.0
            if s[j] < cfg.adaptive_ratio * local or s[j] - local < cfg.adaptive_delta:
                continue
            # One boundary per spike: a neighbour with a higher score wins.
            if (j + 1 < n and s[j + 1] > s[j]) or s[j - 1] >= s[j]:
                continue
            # A cut is an isolated spike: a burst of high scores over a few frames (the end
            # of a whip pan, an occluder sweeping through) is motion, not a cut.
            if max(s[j - 1], s[j + 1] if j + 1 < n else 0.0) > cfg.cut_isolation * s[j]:
                continue
            if bridged(f, cfg, j):
                continue
            strength = min(s[j] / cfg.cut_threshold, (s[j] - local) / cfg.adaptive_delta)
            out.append(Boundary(j, "cut", float(s[j]), float(strength)))
        return out


class FadeDetector:
    """Fades to / from flat frames (black, white, grey) and flat holds (leader, blanks)."""

    def __init__(self, cfg: SceneConfig):
        self.cfg = cfg

    def _ramp(self, std: np.ndarray, edge: int, step: int, limit: int) -> int:
        """Frames of monotonic contrast growth walking away from a flat edge."""
        n, t, r = len(std), edge, 0
        while 0 <= t + step < n and 0 <= t < n and r < limit:
            if std[t + step] > std[t] * 1.005 + 1e-4:
                r += 1
                t += step
            else:
                break
        return r

    def boundaries(self, f: Features) -> list[Boundary]:
        cfg = self.cfg
        std = f["spread"]
        flat = std < cfg.flat_spread
        n = f.n
        out = []
        for s, e in flat_runs(flat):
            ramp_out = self._ramp(std, s - 1, -1, cfg.fade_max_len) + 1 if s > 0 else 0
            ramp_in = self._ramp(std, e, +1, cfg.fade_max_len) + 1 if e < n else 0
            # A fade ramp climbs from the flat span to a clearly structured picture; a dim shot
            # hovering around the flat threshold has only noise "ramps" and no flat span: the
            # picture next to a flat edge must be clearly structured (or fade into one).
            top = cfg.structured_spread
            # It also starts low: the frame next to the flat span keeps at most fade_edge_ratio
            # of the ramp's top contrast (a shot losing a little contrast before a blank
            # frame does not fade).
            out_top = float(np.max(std[s - ramp_out:s])) if s > 0 else 0.0
            in_top = float(np.max(std[e:e + ramp_in])) if e < n else 0.0
            out_fade = (ramp_out >= cfg.fade_min_len and out_top >= top
                        and std[s - 1] <= cfg.fade_edge_ratio * out_top)
            in_fade = (ramp_in >= cfg.fade_min_len and in_top >= top
                       and std[e] <= cfg.fade_edge_ratio * in_top)
            out_edge = s > 0 and (out_fade or float(np.max(std[max(0, s - 3):s])) >= top)
            in_edge = e < n and (in_fade or float(np.max(std[e:e + 3])) >= top)
            if not (out_edge or in_edge) and 0 < s and e < n:
                continue
            long_hold = (e - s) >= cfg.min_scene_len or s == 0 or e == n
            if long_hold:
                if s > 0 and out_edge:
                    sc = _contrast_drop(std, s - 1, s)
                    out.append(Boundary(s, "fade" if out_fade else "cut", sc, 50.0,
                                        (s - ramp_out + 1, s + 1) if out_fade else None))
                if e < n and in_edge:
                    sc = _contrast_drop(std, e, e - 1)
                    out.append(Boundary(e, "fade" if in_fade else "cut", sc, 50.0,
                                        (e - 1, e + ramp_in - 1) if in_fade else None))
            else:
                if not (out_fade or in_fade) and bridged(f, cfg, e) and bridged(f, cfg, s):
                    continue  # a blank frame or two inside a shot
                if not (out_fade or in_fade) and e - s <= cfg.flash_max_len and bridged(f, cfg, s):
                    continue
                sc = _contrast_drop(std, e, e - 1)
                span = (s - max(ramp_out - 1, 0), e + max(ramp_in - 1, 0))
                out.append(Boundary(e, "fade" if (out_fade or in_fade) else "cut", sc, 40.0, span))
        return out


def _contrast_drop(std: np.ndarray, picture: int, flat: int) -> float:
    p = float(std[picture])
    return float(np.clip((p - float(std[flat])) / p, 0.0, 1.0)) if p > 0 else 0.0


def dissolve_evidence(dab, dac, dcb, cfg: SceneConfig) -> np.ndarray:
    """How much better frame c is explained by a positive mix of both ends than by the better
    end alone: the fraction of the single-end residual variance that the two-end linear fit
    removes (0..1; -inf where not a candidate). From the pairwise correlations only."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ra, rb, rab = 1.0 - dac, 1.0 - dcb, 1.0 - dab
        den = 1.0 - rab * rab
        r2_two = (ra * ra + rb * rb - 2.0 * ra * rb * rab) / den
        r2_one = np.maximum(ra, rb) ** 2
        unexplained = 1.0 - r2_one
        e = (r2_two - r2_one) / np.maximum(unexplained, 1e-6)
        beta_a = (ra - rb * rab) / den
        beta_b = (rb - ra * rab) / den
        ok = ((dab >= cfg.dissolve_end_min) & (unexplained >= cfg.dissolve_min_unexplained)
              & (beta_a >= cfg.dissolve_min_weight) & (beta_b >= cfg.dissolve_min_weight))
    e = np.where(ok, e, -np.inf)
    return np.nan_to_num(e, nan=-np.inf)


class DissolveDetector:
    """Dissolves: a frame that is the mix of frames k before and k after it, the two ends
    being different shots; motion-aligned so that a pan is not a mix."""

    def __init__(self, cfg: SceneConfig):
        self.cfg = cfg

    def evidence(self, f: Features) -> tuple[np.ndarray, np.ndarray]:
        """Per centre frame c: best evidence over half-lengths, and (dac - dcb) at that k."""
        cfg, n = self.cfg, f.n
        best = np.full(n, -np.inf)
        side = np.zeros(n)
        for k in cfg.dissolve_half_lengths:
            if not f.has(f"dab{k}") or n <= 2 * k:
                continue
            # Row j holds the test centred on j - k: shift up by k.
            col = {}
            for name in ("dab", "dac", "dcb", "cab", "cac", "ccb"):
                col[name] = np.full(n, np.nan)
                col[name][:n - k] = f[f"{name}{k}"][k:]
            dab, dac, dcb = col["dab"], col["dac"], col["dcb"]
            # The two ends must be different pictures at coarse scale too (see
            # SceneConfig.dissolve_coarse_sigma); NaN (not verified) fails.
            e = dissolve_evidence(dab, dac, dcb, cfg)
            with np.errstate(invalid="ignore"):
                e = np.where(col["cab"] >= cfg.dissolve_coarse_end_min, e, -np.inf)
            better = e > best
            best[better] = e[better]
            side[better] = (dac - dcb)[better]
        return best, side

    def boundaries(self, f: Features) -> list[Boundary]:
        cfg = self.cfg
        ev, side = self.evidence(f)
        hit = ev >= cfg.dissolve_gain
        out = []
        runs = flat_runs(hit)
        # Merge runs separated by a gap of at most 2 frames.
        merged: list[list[int]] = []
        for s, e in runs:
            if merged and s - merged[-1][1] <= 2:
                merged[-1][1] = e
            else:
                merged.append([s, e])
        for s, e in merged:
            if e - s < cfg.dissolve_min_run or e - s > cfg.dissolve_max_len:
                continue  # too short: noise; longer than any dissolve: camera motion (zoom)
            frame = None
            for c in range(s, e):
                if side[c] >= 0:  # closer to the incoming shot
                    frame = c
                    break
            if frame is None:
                frame = (s + e) // 2
            score = float(np.max(ev[s:e]))
            out.append(Boundary(int(frame), "dissolve", score, score / cfg.dissolve_gain, (s, e)))
        return out


def select(cands: list[Boundary], n: int, min_len: int) -> list[Boundary]:
    """Strongest first; a boundary closer than min_len to a kept one (or to the film's
    start / end) is dropped."""
    kept: list[Boundary] = []
    for b in sorted(cands, key=lambda b: (-b.strength, b.frame)):
        if b.frame < min_len or n - b.frame < min_len:
            continue
        if any(abs(b.frame - k.frame) < min_len for k in kept):
            continue
        kept.append(b)
    return sorted(kept, key=lambda b: b.frame)


def decide(f: Features, cfg: SceneConfig) -> tuple[list[Boundary], np.ndarray]:
    """Boundaries (sorted, min length enforced) and the per-frame flat mask."""
    n = f.n
    flat = f["spread"] < cfg.flat_spread
    fades = FadeDetector(cfg).boundaries(f)
    cuts = CutDetector(cfg).boundaries(f)
    dissolves = DissolveDetector(cfg).boundaries(f)
    # Cuts inside a fade ramp / dip, or at a flat edge, are the fade's.
    spans = [(b.span if b.span else (b.frame, b.frame + 1)) for b in fades]

    def inside(j: int, margin: int = 1) -> bool:
        return any(lo - margin <= j <= hi + margin for lo, hi in spans)

    # (A cut next to a flat frame that no fade claims stays: a cut between dim shots.)
    cuts = [b for b in cuts if not inside(b.frame)]
    dissolves = [b for b in dissolves if not inside(b.frame, 2)]
    # A dissolve containing a hard cut is the cut.
    dissolves = [d for d in dissolves if not any(d.span[0] - 1 <= c.frame <= d.span[1] for c in cuts)]
    if n < 2 * cfg.min_scene_len:
        return [], flat
    return select(fades + cuts + dissolves, n, cfg.min_scene_len), flat
