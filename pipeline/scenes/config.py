"""Every threshold of the scene detector, in one typed, frozen configuration.

Scores are defined in `features.py`; in short, all of them are dissimilarities on the
downscaled luma ("thumbnail", `analysis_width` pixels wide):

* ``ssim``   1 - SSIM between a frame and the previous one, after global-motion
             compensation (phase correlation), on contrast-normalised luma, reduced as
             the median over the informative blocks of a grid (so a local change —
             an object crossing, a scratch — moves it little). 0 = same picture, ~1 = unrelated.
* ``hist``   earth mover's distance between the luma histograms of the two frames / hist_scale.
* ``score``  the cut score: ``(1 - hist_weight) * ssim + hist_weight * hist``.

Defaults were tuned on `bench/scenes/run.py` (black-and-white films made from photographs
with motion, grain, flicker, weave, scratches, flashes and whip pans).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SceneConfig:
    # --- analysis -------------------------------------------------------------------
    analysis_width: int = 128
    """Width in pixels of the downscaled luma the features are computed on (height keeps
    the aspect ratio, at least 16). 128 is enough for shot structure and averages grain away."""
    blur_sigma: float = 1.0
    """Gaussian blur (thumbnail pixels) applied to the thumbnail before every measurement:
    grain and compression noise average out, shot structure stays."""
    hist_bins: int = 32
    """Luma histogram bins."""
    hist_scale: float = 0.2
    """The histogram distance is the earth mover's distance between the two luma histograms
    (luma 0..1 units) divided by this, capped at 1: robust to flicker, which only shifts them."""
    std_floor: float = 0.04
    """Contrast normalisation divides each thumbnail by max(std, std_floor) (luma 0..1), so
    a dim shot is compared like a bright one while a black frame stays flat, not amplified noise."""
    motion_compensation: bool = True
    """Align consecutive frames by their global translation (phase correlation) before SSIM:
    pans, tilts and gate weave then score like a still camera."""

    # --- hard cuts ------------------------------------------------------------------
    hist_weight: float = 0.25
    """Weight of the histogram distance in the cut score (the rest is structural)."""
    cut_threshold: float = 0.35
    """A cut needs at least this score, whatever its neighbourhood."""
    adaptive_window: int = 8
    """Frames on each side forming the local neighbourhood of a boundary's score."""
    adaptive_ratio: float = 2.5
    """A cut's score must be at least this multiple of the neighbourhood mean (the frame
    itself and its direct neighbours excluded) ..."""
    adaptive_delta: float = 0.20
    """... and exceed the neighbourhood mean by at least this much."""

    cut_isolation: float = 0.5
    """A cut's direct neighbours (the boundaries just before and after it) score at most this
    fraction of it: one frame changes the picture, not a burst of frames (motion)."""

    # --- flashes, exposure jumps, dropouts -------------------------------------------
    flash_max_len: int = 3
    """A run of up to this many frames after which the picture returns to the one before it
    (a flash, an exposure jump, a blank or damaged frame) is not a cut."""
    flash_similarity: float = 0.35
    """'Returns to the picture before it': a pair of frames at most flash_max_len + 1 apart
    across the boundary has a (motion-compensated) structural dissimilarity below this."""
    flash_gate: float = 0.15
    """Lag comparisons are computed only where a consecutive score exceeds this (cost)."""

    # --- low variability, fades -----------------------------------------------------
    flat_spread: float = 0.02
    """A frame whose luma spread (p90 - p10 at 1/4 of the thumbnail's size, 0..1 scale) is
    below this is flat: black, white or grey (leader, blank frames, the bottom of a fade)."""
    structured_spread: float = 0.04
    """A frame with at least this spread is clearly structured (twice flat_spread): a flat
    span's edge, or the top of a fade ramp, must reach it, so that a dim shot hovering
    around flat_spread (grain, flicker) is neither a flat span nor a fade."""
    low_variability_fraction: float = 0.8
    """A scene is flagged low_variability when at least this fraction of its frames are flat."""
    fade_min_len: int = 3
    """A ramp of at least this many frames of monotonic contrast change into / out of flat
    frames is a fade (shorter: a hard cut to/from black)."""
    fade_edge_ratio: float = 0.5
    """A fade ramp starts low: the frame next to the flat span has at most this fraction of
    the ramp's top spread (after a linear fade of n >= 3 frames it is 1/(n+1) <= 1/4)."""
    fade_max_len: int = 120
    """Longest fade ramp followed when measuring a fade."""

    # --- dissolves ------------------------------------------------------------------
    dissolve_half_lengths: tuple[int, ...] = (3, 6, 10, 15)
    """Half-lengths k tested: frame c is compared with the mix of frames c-k and c+k.
    (3, 15) covers dissolves of 6 to 30 frames."""
    dissolve_min_len: int = 6
    dissolve_max_len: int = 30
    dissolve_end_min: float = 0.45
    """The two ends (c-k, c+k) must be this dissimilar (1 - correlation): different shots."""
    dissolve_gain: float = 0.5
    """Frame c is a mix when a positive two-end linear fit (c ~ wa*a + wb*b) removes at least
    this fraction of the variance that the better single end leaves unexplained."""
    dissolve_min_unexplained: float = 0.03
    """... and the better single end leaves at least this fraction unexplained (1 - r^2)."""
    dissolve_min_weight: float = 0.15
    """... and both ends weigh at least this much in the fit (standardised)."""
    dissolve_zoom_rate: float = 0.01
    """Zoom searched when verifying a dissolve candidate: up to this relative scale change
    per frame between the centre and each end (1%/frame is a fast zoom). A candidate's
    ends are warped by the zoom that best predicts the centre from each end alone, so a
    zoom or dolly (one picture, rescaled) is not taken for a mix of two. 0 disables."""
    dissolve_direct_align: bool = True
    """When verifying a candidate, place each end by its own displacement to the centre,
    measured directly (phase correlation end -> centre, k frames apart), rather than by the
    sum of the k per-frame shifts alone (the better predictor of the centre wins). Per-frame
    estimates of sub-pixel motion are biased towards zero, so over k frames of a slow, steady
    pan the ends drift apart symmetrically, and the centre — then lying between them — looks
    like their mix: a false dissolve in smooth, upscaled shots."""
    dissolve_refine_shift: float = 1.0
    """After the zoom search, each end's translation is corrected by the residual shift to
    the centre at the best zoom (phase correlation), by at most this many half-thumbnail
    pixels per axis (0 disables): translation and zoom are fitted together."""
    dissolve_verify_gate: float = 0.25
    """The verification (zoom search, coarse-scale test) runs only where the translation-only
    dissolve evidence reaches this (cost: candidates are rare). Elsewhere the coarse columns
    stay undefined, which counts as no evidence."""
    dissolve_coarse_sigma: float = 2.0
    """Gaussian blur (half-thumbnail pixels) of the coarse-scale repeat of the mix test: a
    dissolve must be a mix of its ends at fine and at coarse scale, so that the fine-scale
    interpolation of a picture moving by sub-pixel amounts is not taken for a mix."""
    dissolve_coarse_end_min: float = 0.25
    """At that coarse scale the two ends must still be this dissimilar (1 - correlation):
    the same picture, moved, is similar there; two different shots are not."""
    dissolve_min_run: int = 3
    """Frames of consecutive dissolve evidence needed."""

    # --- scenes ---------------------------------------------------------------------
    min_scene_len: int = 6
    """No scene shorter than this (frames), except where the film itself is shorter. When two
    boundaries are closer, the stronger one is kept."""

    @property
    def lookback(self) -> int:
        """Frames before a range that a range scan decodes so that every feature of its own
        frames sees exactly what a sequential scan sees."""
        return max(2 * max(self.dissolve_half_lengths), self.flash_max_len + 1) + 1

    def thumb_size(self, width: int, height: int) -> tuple[int, int]:
        w = min(self.analysis_width, width)
        h = max(16, min(height, int(round(height * w / width))))
        return int(w), int(h)
